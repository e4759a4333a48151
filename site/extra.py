"""Print one optional-dependency group of pyproject.toml as words: ``pip install $(python site/extra.py site)``.

The Makefile installs the web editions' build tools from here, so pyproject.toml stays
the one list of them (pinned by constraints.txt).
"""
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

if __name__ == "__main__":
    groups = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    if len(sys.argv) != 2 or sys.argv[1] not in groups:
        sys.exit(f"usage: extra.py GROUP  (one of: {', '.join(groups)})")
    # one word per requirement (spaces dropped): the shell splits $(...) on blanks and applies no quotes;
    # '>' inside a substituted word is not a redirection
    print(" ".join("".join(spec.split()) for spec in groups[sys.argv[1]]))
