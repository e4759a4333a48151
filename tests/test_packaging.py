"""Set-up files agree with each other: pyproject, environment.yml, constraints, CI."""
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name where they differ
CONDA_NAME = {"torch": "pytorch", "cupy-cuda12x": "cupy"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower(), spec.replace(" ", "").replace("==", "=")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("dev", "gpu"):
        reqs += project["optional-dependencies"][extra]
    out = {}
    for r in reqs:
        name, spec = _split(r)
        out[CONDA_NAME.get(name, name)] = spec
    return out


def _environment_requirements() -> dict[str, str]:
    deps = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s+-\s+([A-Za-z0-9_.\-]+)(.*)$", line)
        if m and m.group(1) not in ("conda-forge",):
            deps[m.group(1).lower()] = m.group(2).strip().replace(" ", "").replace("==", "=")
    deps.pop("python", None)
    deps.pop("pip", None)
    return deps


def test_environment_yml_lists_the_same_packages_and_versions_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_constraints_pin_every_direct_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [_split(r)[0] for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    missing = [name for name in direct if name not in pins]
    assert not missing, f"constraints.txt pins none of {missing}"
    assert pins["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make lab" in readme


@pytest.mark.parametrize("target", ["lab", "test", "course"])
def test_makefile_targets_exist(target):
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), flags=re.M)
