"""The course's chapters, found from the file names alone: ``notebooks/NN_slug.ipynb`` in order of NN."""
from __future__ import annotations

import json
import re
from pathlib import Path

CHAPTER_NAME = re.compile(r"^(\d{2})_[A-Za-z0-9_]+\.ipynb$")


def chapter_number(path: Path) -> int:
    match = CHAPTER_NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"{path}: not a chapter notebook name (expected NN_slug.ipynb)")
    return int(match.group(1))


def find_chapters(notebooks: Path) -> list[Path]:
    """The chapter notebooks in course order; two chapters with one number, or a gap, is an error."""
    chapters = sorted((p for p in Path(notebooks).glob("*.ipynb") if CHAPTER_NAME.match(p.name)), key=chapter_number)
    if not chapters:
        raise SystemExit(f"no chapter notebooks (NN_slug.ipynb) in {notebooks}")
    numbers = [chapter_number(p) for p in chapters]
    for number in sorted(set(numbers)):
        same = sorted(p.name for p in chapters if chapter_number(p) == number)
        if len(same) > 1:
            raise SystemExit(f"chapters out of order: two chapters numbered {number:02d}: {', '.join(same)}")
    for expected, number in enumerate(numbers, start=numbers[0]):
        if number != expected:
            raise SystemExit(f"chapters out of order: expected chapter {expected:02d} after "
                             f"{chapters[expected - numbers[0] - 1].name}, found {chapters[expected - numbers[0]].name}")
    return chapters


def _first_markdown(path: Path) -> str:
    cells = json.loads(Path(path).read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            source = cell["source"]
            return "".join(source) if isinstance(source, list) else source
    return ""


def chapter_title(path: Path) -> str:
    """The notebook's level-1 heading without its 'NN ·' prefix (the file's slug when it has none)."""
    match = re.search(r"^#\s+(.+?)\s*$", _first_markdown(path), flags=re.M)
    title = match.group(1) if match else Path(path).stem.split("_", 1)[1].replace("_", " ").capitalize()
    return re.sub(r"^\d{2}\s*[·:.\-–—]\s*", "", title)


def readme_summary(path: Path, readme: Path | None = None) -> str | None:
    """What the README's table of notebooks says a chapter teaches (its last column), if it lists it."""
    readme = readme or Path(path).resolve().parents[1] / "README.md"
    if not readme.exists():
        return None
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) >= 3 and f"notebooks/{Path(path).name})" in cells[1]:
            return cells[-1] or None
    return None


def chapter_summary(path: Path, limit: int = 160) -> str:
    """For the landing page's table: the README's line on the chapter, else the first sentence under its title."""
    from_readme = readme_summary(path)
    if from_readme:
        return from_readme
    text = _first_markdown(path)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and not p.lstrip().startswith("#")]
    if not paragraphs:
        return ""
    paragraph = " ".join(paragraphs[0].split())
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z])", paragraph)[0]
    if len(sentence) > limit:
        cut = sentence[:limit].rsplit(" ", 1)[0]
        if cut.count("$") % 2:  # never cut inside a formula
            cut = cut[: cut.rfind("$")].rstrip()
        sentence = cut + " …"
    return sentence.replace("|", "\\|")
