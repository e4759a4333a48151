"""Build the course website from the stored, executed notebooks: ``make site``.

    python site/build_site.py [--out build/site]

1. The chapters are ``notebooks/NN_slug.ipynb``, in the order of their numbers
   (two numbers alike, or a gap, stop the build).
2. ``cnncourse release`` writes the student copies; each chapter page links its own.
3. The Sphinx sources are assembled in ``build/site-src/``: the landing page
   (``site/index.md`` with the chapter list filled in), the chapters (copies of
   the stored notebooks, never re-executed, with a "work through this chapter"
   box, solutions folded, and a note under each explorer), and the instructors'
   guide (``docs/instructors.md``).  Links to repository files that are not on
   the site become plain text naming the file.
4. ``sphinx-build -W`` (strict: any warning, such as a broken cross-reference or
   a missing image, fails), then ``site/check_site.py`` checks the built HTML:
   every local link and image resolves, nothing is loaded from another host,
   and the chapters appear, and link prev/next, in course order.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat

SITE_DIR = Path(__file__).resolve().parent
REPO = SITE_DIR.parent
sys.path.insert(0, str(SITE_DIR))

from check_site import check_site  # noqa: E402
from course import chapter_number, chapter_summary, chapter_title, find_chapters  # noqa: E402

EXPLORER_OUTPUT = "[interactive widget"
SOLUTION_MARK = "### BEGIN SOLUTION"
SOLUTION_TOGGLE = {"code_prompt_show": "Show the worked solution", "code_prompt_hide": "Hide the worked solution"}
LITE_URL = "../lite/lab/index.html?path={name}"
MD_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(\s*([^)\s]+)(\s+\"[^\"]*\")?\s*\)")
HTML_IMG = re.compile(r"<img\b[^>]*?\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)


# --------------------------------------------------------------------------- links


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith(("#", "//"))


def rewrite_links(text: str, source_file: Path, page_file: Path, site_files: dict[Path, Path]) -> str:
    """Point relative links of ``source_file`` (in the repository) at their pages on the site.

    ``site_files`` maps repository files to their copies in the site's sources;
    ``page_file`` is where this text ends up.  A link to a repository file
    that is not on the site becomes its text plus the file's path; a link to
    nothing is left alone, so that the strict build reports it; a linked
    image is copied beside the page.
    """
    def fix(match: re.Match) -> str:
        bang, label, target, title = match.group(1), match.group(2), match.group(3), match.group(4) or ""
        if _is_external(target):
            return match.group(0)
        path_part, _, fragment = target.partition("#")
        resolved = (source_file.parent / path_part).resolve()
        if resolved in site_files:
            relative = os.path.relpath(site_files[resolved], page_file.parent)
            return f"{bang}[{label}]({relative}{'#' + fragment if fragment else ''}{title})"
        if not resolved.exists():
            return match.group(0)
        if bang:  # an image that lives in the repository: copy it next to the page
            copied = page_file.parent / path_part
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(resolved, copied)
            return match.group(0)
        try:
            shown = resolved.relative_to(REPO).as_posix()
        except ValueError:
            shown = path_part
        return f"{label} (`{shown}` in the repository)"

    for target in HTML_IMG.findall(text):  # <img src="..."> in markdown: copy the file beside the page too
        if not _is_external(target) and (source_file.parent / target).is_file():
            copied = page_file.parent / target
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_file.parent / target, copied)
    return MD_LINK.sub(fix, text)


# --------------------------------------------------------------------------- chapters


def _markdown_cell(source: str, tags=()):
    cell = nbformat.v4.new_markdown_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    cell.pop("id", None)
    return cell


def work_box(name: str) -> str:
    """The box under each chapter's title: where to get the notebook and how to run it."""
    return (
        ":::{admonition} Work through this chapter\n"
        ":class: tip chapter-links\n\n"
        "This page is the notebook as stored, run top to bottom, solutions folded. To do the exercises, "
        f'<a class="student-copy" href="../student/{name}" download>download the student copy</a> '
        "(exercises blank, outputs cleared) and open it in JupyterLab (`make lab` in the course repository), "
        f'or <a class="lite-link" href="{LITE_URL.format(name=name)}">run it in your browser</a> '
        "with the JupyterLite edition, where nothing needs installing.\n"
        ":::\n"
    )


EXPLORER_NOTE = (
    ":::{note}\n"
    "The cell above opens an interactive explorer (sliders redraw the figure). A web page cannot run "
    "Python, so only its stored text is shown here: run the notebook in JupyterLab or in the "
    "JupyterLite edition to use it.\n"
    ":::\n"
)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _drop_widget_views(cell) -> bool:
    """Remove live-widget outputs (a static page cannot show them); True if there were any."""
    found = False
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if WIDGET_VIEW in data:
            found = True
            del data[WIDGET_VIEW]
            data.setdefault("text/plain", "[interactive widget: run this cell to use it]")
    return found


def _shows_explorer(cell) -> bool:
    for output in cell.get("outputs", []):
        text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
        if isinstance(text, list):
            text = "".join(text)
        if EXPLORER_OUTPUT in text:
            return True
    return False


def chapter_page(source: Path, page: Path, site_files: dict[Path, Path]) -> None:
    """Write the site's copy of one stored notebook (outputs untouched, nothing executed)."""
    nb = nbformat.read(source, as_version=4)
    cells = []
    for index, cell in enumerate(nb.cells):
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, source, page, site_files)
        elif cell.cell_type == "code" and SOLUTION_MARK in cell.source:
            tags = cell.metadata.setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")  # a worked solution: one click away, not in the reader's face
            cell.metadata["mystnb"] = {**cell.metadata.get("mystnb", {}), **SOLUTION_TOGGLE}
        cells.append(cell)
        if index == 0:
            cells.append(_markdown_cell(work_box(source.name)))
        if cell.cell_type == "code" and (_drop_widget_views(cell) | _shows_explorer(cell)):
            cells.append(_markdown_cell(EXPLORER_NOTE))
    nb.cells = cells
    nb.metadata.pop("widgets", None)  # saved widget state: nothing on a static page uses it
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4
    page.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, page)


# --------------------------------------------------------------------------- landing page


def landing_page(template: Path, chapters: list[Path]) -> str:
    rows = ["| # | chapter | what you learn |", "|---|---|---|"]
    for path in chapters:
        title = chapter_title(path)
        rows.append(f"| {chapter_number(path):02d} | [{title}](chapters/{path.name}) | {chapter_summary(path)} |")
    toctree = ["```{toctree}", ":caption: Chapters", ":maxdepth: 1", ":hidden:", "",
               *[f"chapters/{path.stem}" for path in chapters], "```", "",
               "```{toctree}", ":caption: For instructors", ":maxdepth: 1", ":hidden:", "", "instructors", "```"]
    text = template.read_text()
    for marker, value in (("<!-- CHAPTER-TABLE -->", "\n".join(rows)), ("<!-- TOCTREE -->", "\n".join(toctree)),
                          ("<!-- CHAPTER-COUNT -->", str(len(chapters)))):
        if marker not in text:
            raise SystemExit(f"{template}: the marker {marker} is missing")
        text = text.replace(marker, value)
    return text


# --------------------------------------------------------------------------- the build


def release(chapters: list[Path], out: Path) -> None:
    """The student copies, exactly as `cnncourse release` writes them for the course."""
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "cnncourse.cli", "release", *map(str, chapters), "-o", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cnncourse release failed:\n{done.stdout}\n{done.stderr}")


def assemble(src: Path, chapters: list[Path], student: Path) -> None:
    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    site_files = {path.resolve(): src / "chapters" / path.name for path in chapters}
    instructors = REPO / "docs" / "instructors.md"
    site_files[instructors.resolve()] = src / "instructors.md"
    site_files[(REPO / "README.md").resolve()] = src / "index.md"
    for path in chapters:
        chapter_page(path, src / "chapters" / path.name, site_files)
    (src / "instructors.md").write_text(rewrite_links(instructors.read_text(), instructors, src / "instructors.md",
                                                      site_files))
    (src / "index.md").write_text(landing_page(SITE_DIR / "index.md", chapters))
    if not all((student / path.name).exists() for path in chapters):
        raise SystemExit(f"cnncourse release did not write every chapter into {student}")


def add_student_copies(out: Path, student: Path, chapters: list[Path]) -> None:
    """Student copies under student/, one per chapter, plus all of them in one zip."""
    target = out / "student"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with zipfile.ZipFile(target / "cnncourse-student-notebooks.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in chapters:
            shutil.copy2(student / path.name, target / path.name)
            archive.write(student / path.name, f"cnncourse-notebooks/{path.name}")


def build(out: Path, notebooks: Path, work: Path, jobs: str = "auto") -> None:
    started = time.perf_counter()
    chapters = find_chapters(notebooks)
    student = work / "site-student"
    src = work / "site-src"
    release(chapters, student)
    assemble(src, chapters, student)
    if out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-j", jobs,
               "-c", str(SITE_DIR), "-d", str(work / "site-doctrees"), str(src), str(out)]
    done = subprocess.run(command)
    if done.returncode != 0:
        raise SystemExit("sphinx-build failed in strict mode (the warnings above are errors)")
    add_student_copies(out, student, chapters)
    problems = check_site(out, [path.name for path in chapters])
    if problems:
        raise SystemExit("the built site has problems:\n" + "\n".join(f"  - {p}" for p in problems))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"site: {len(chapters)} chapters, {size / 2**20:.1f} MiB in {out} "
          f"({time.perf_counter() - started:.0f} s); serve it with: python -m http.server -d {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument("--work", type=Path, default=REPO / "build", help="where the sources are assembled")
    parser.add_argument("--jobs", default="auto", help="sphinx-build -j")
    args = parser.parse_args(argv)
    build(args.out.resolve(), args.notebooks.resolve(), args.work.resolve(), args.jobs)


if __name__ == "__main__":
    main()
