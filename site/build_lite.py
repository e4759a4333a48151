"""Build the JupyterLite edition of the course: ``make lite``.

    python site/build_lite.py [--out build/lite]

JupyterLab running in the browser, with the Pyodide kernel (Python compiled to
WebAssembly): nothing to install for the student.  The build holds

- the student copies (``cnncourse release``) of every chapter, each with one
  cell put first that, under Pyodide only, installs the course package and
  what it needs (``piplite``); in a normal Jupyter kernel the cell does nothing;
- a pure-Python wheel of ``cnncourse``, indexed so that ``piplite`` finds it
  in the site itself rather than on PyPI.

Pyodide's runtime and its NumPy/SciPy/matplotlib builds are not in the build:
the kernel fetches them from Pyodide's CDN when it starts (the first visit
needs the internet; the browser caches them afterwards).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat

SITE_DIR = Path(__file__).resolve().parent
REPO = SITE_DIR.parent
sys.path.insert(0, str(SITE_DIR))

from build_site import release  # noqa: E402
from course import find_chapters  # noqa: E402

#: Dependencies a browser cannot (and need not) install: the notebook server itself.
NOT_IN_BROWSER = {"jupyterlab"}
PYODIDE_KERNEL = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
BOOTSTRAP_TAG = "jupyterlite-install"


def browser_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The package's run-time dependencies, by name, less those that make no sense in a browser."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~;\[\s]", spec, maxsplit=1)[0] for spec in dependencies]
    return [name for name in names if name.lower() not in NOT_IN_BROWSER]


def bootstrap_source(requirements: list[str]) -> str:
    return (
        "# In the browser (JupyterLite): install the course package and what it needs, once per session.\n"
        "# In JupyterLab on your own machine this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if sys.platform == "emscripten":\n'
        "    import piplite\n"
        "\n"
        f"    await piplite.install({requirements!r})\n"
        '    await piplite.install("cnncourse", deps=False)  # the wheel that comes with this site\n'
    )


def lite_notebook(student: Path, target: Path, requirements: list[str]) -> None:
    """A student copy with the install cell put first and the Pyodide kernel selected."""
    nb = nbformat.read(student, as_version=4)
    cell = nbformat.v4.new_code_cell(bootstrap_source(requirements))
    cell.metadata["tags"] = [BOOTSTRAP_TAG]
    cell.metadata["editable"] = False
    nb.cells.insert(0, cell)
    nb.metadata["kernelspec"] = dict(PYODIDE_KERNEL)
    nbformat.validate(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def build_wheel(dest: Path) -> Path:
    """``cnncourse-*-py3-none-any.whl`` (pure Python: the CUDA sources ride along as data)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with_src = dest.parent / "wheel-src"  # only what the wheel is made of: no venvs, builds or notebooks
    if with_src.exists():
        shutil.rmtree(with_src)
    with_src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, with_src / name)
    shutil.copytree(REPO / "cnncourse", with_src / "cnncourse", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(dest), str(with_src)], capture_output=True, text=True)
    if done.returncode != 0:  # no setuptools in this environment: let pip fetch it in an isolated build
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest),
                               str(with_src)], capture_output=True, text=True)
    shutil.rmtree(with_src, ignore_errors=True)
    wheels = sorted(dest.glob("cnncourse-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise SystemExit(f"building the cnncourse wheel failed:\n{done.stdout}\n{done.stderr}")
    if not wheels[0].name.endswith("-py3-none-any.whl"):
        raise SystemExit(f"{wheels[0].name} is not a pure-Python wheel: Pyodide could not install it")
    return wheels[0]


def build(out: Path, notebooks: Path, work: Path, lite_python: str = sys.executable) -> None:
    started = time.perf_counter()
    chapters = find_chapters(notebooks)
    lite_src = work / "lite-src"
    student = work / "lite-student"
    release(chapters, student)
    if lite_src.exists():
        shutil.rmtree(lite_src)
    files = lite_src / "files"
    requirements = browser_requirements()
    for path in chapters:
        lite_notebook(student / path.name, files / path.name, requirements)
    wheel = build_wheel(work / "lite-wheels")
    if out.exists():
        shutil.rmtree(out)
    command = [lite_python, "-m", "jupyterlite_core", "build", "--lite-dir", str(lite_src),
               "--contents", str(files), "--output-dir", str(out), "--piplite-wheels", str(wheel),
               "--apps", "lab", "--apps", "notebooks", "--no-sourcemaps", "--no-unused-shared-packages"]
    done = subprocess.run(command, cwd=lite_src, capture_output=True, text=True)
    if done.returncode != 0 or not (out / "lab" / "index.html").exists():
        raise SystemExit(f"jupyter lite build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"lite: {len(chapters)} notebooks + {wheel.name}, {size / 2**20:.1f} MiB in {out} "
          f"({time.perf_counter() - started:.0f} s); serve it with: python -m http.server -d {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "lite")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument("--work", type=Path, default=REPO / "build", help="where the sources are assembled")
    parser.add_argument("--lite-python", default=sys.executable,
                        help="the Python that has jupyterlite-core and the Pyodide kernel (make lite: .venv-lite)")
    args = parser.parse_args(argv)
    # absolute() and not resolve(): a venv's python is a symlink to the base interpreter
    lite_python = str(Path(args.lite_python).absolute()) if os.sep in args.lite_python else args.lite_python
    build(args.out.resolve(), args.notebooks.resolve(), args.work.resolve(), lite_python)


if __name__ == "__main__":
    main()
