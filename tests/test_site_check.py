"""The website's build checks (site/check_site.py, site/course.py, link rewriting in site/build_site.py).

These run without Sphinx: they feed the checker small hand-made sites that are broken in
one way each and check that it names the problem, and that a sound site passes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "site"))

from check_site import check_site  # noqa: E402
from course import chapter_summary, chapter_title, find_chapters  # noqa: E402

NAMES = ["00_start.ipynb", "01_next.ipynb", "02_last.ipynb"]


def _page(body: str, prev: str | None = None, nxt: str | None = None, head: str = "") -> str:
    links = ""
    if prev:
        links += f'<a class="left-prev" href="{prev}">previous</a>'
    if nxt:
        links += f'<a class="right-next" href="{nxt}">next</a>'
    return f"<html><head>{head}</head><body><article>{body}</article>{links}</body></html>"


def _site(tmp_path: Path, order=(0, 1, 2)) -> Path:
    site = tmp_path / "site"
    (site / "chapters").mkdir(parents=True)
    (site / "_static").mkdir()
    (site / "_static" / "style.css").write_text("body { background: url('bg.png'); }")
    (site / "_static" / "bg.png").write_bytes(b"png")
    stems = [Path(n).stem for n in NAMES]
    toc = "".join(f'<a href="chapters/{stems[k]}.html">{stems[k]}</a>' for k in order)
    (site / "index.html").write_text(_page('<h1 id="top">course</h1>' + toc, head='<link rel="stylesheet" href="_static/style.css">',
                                           nxt=f"chapters/{stems[0]}.html"))
    for k, stem in enumerate(stems):
        prev = f"{stems[k - 1]}.html" if k else "../index.html"
        nxt = f"{stems[k + 1]}.html" if k + 1 < len(stems) else None
        body = f'<h1 id="top">{stem}</h1><img src="../_static/bg.png"><a href="{prev}#top">back</a>'
        (site / "chapters" / f"{stem}.html").write_text(_page(body, prev, nxt))
    return site


def test_a_sound_site_passes(tmp_path):
    assert check_site(_site(tmp_path), NAMES) == []


def test_a_broken_link_is_named(tmp_path):
    site = _site(tmp_path)
    (site / "chapters" / "01_next.html").write_text(_page('<a href="missing.html">x</a>', "00_start.html",
                                                          "02_last.html"))
    problems = check_site(site, NAMES)
    assert any("broken link missing.html" in p for p in problems), problems


def test_a_missing_image_is_named(tmp_path):
    site = _site(tmp_path)
    (site / "_static" / "bg.png").unlink()
    problems = check_site(site, NAMES)
    assert any("<img> ../_static/bg.png: no such file" in p for p in problems), problems


def test_a_fragment_that_names_nothing_is_named(tmp_path):
    site = _site(tmp_path)
    (site / "chapters" / "02_last.html").write_text(_page('<a href="00_start.html#nowhere">x</a>', "01_next.html"))
    problems = check_site(site, NAMES)
    assert any("has no #nowhere" in p for p in problems), problems


@pytest.mark.parametrize("head", ['<script src="https://cdn.example.org/mathjax.js"></script>',
                                  '<link rel="stylesheet" href="//fonts.example.org/f.css">',
                                  '<img src="http://example.org/a.png">'])
def test_anything_loaded_from_another_host_is_named(tmp_path, head):
    site = _site(tmp_path)
    (site / "instructors.html").write_text(_page("guide", head=head))
    problems = check_site(site, NAMES)
    assert any("from another host" in p for p in problems), problems


def test_a_css_url_to_another_host_is_named(tmp_path):
    site = _site(tmp_path)
    (site / "_static" / "style.css").write_text("@import 'https://fonts.example.org/x.css';")
    assert any("style.css: loads https://fonts.example.org/x.css" in p for p in check_site(site, NAMES))


def test_a_plain_link_to_another_host_is_fine(tmp_path):
    site = _site(tmp_path)
    (site / "instructors.html").write_text(_page('<a href="https://cupy.dev">CuPy</a>'))
    assert check_site(site, NAMES) == []


def test_chapters_out_of_order_on_the_index_are_named(tmp_path):
    problems = check_site(_site(tmp_path, order=(0, 2, 1)), NAMES)
    assert any("index.html lists the chapters" in p for p in problems), problems


def test_a_next_link_that_skips_a_chapter_is_named(tmp_path):
    site = _site(tmp_path)
    (site / "chapters" / "00_start.html").write_text(_page("x", "../index.html", "02_last.html"))
    problems = check_site(site, NAMES)
    assert any("00_start.html: 'next' goes to '02_last.html'" in p for p in problems), problems


def test_links_into_an_unbuilt_lite_edition_are_not_errors_until_it_exists(tmp_path):
    site = _site(tmp_path)
    (site / "instructors.html").write_text(_page('<a href="lite/lab/index.html">lite</a>'))
    assert check_site(site, NAMES) == []
    (site / "lite").mkdir()
    assert any("broken link lite/lab/index.html" in p for p in check_site(site, NAMES))


# --------------------------------------------------------------------------- chapters from file names


def _notebook(path: Path, first_markdown: str) -> None:
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": first_markdown}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_chapters_come_in_the_order_of_their_numbers(tmp_path):
    for name in ("02_c.ipynb", "00_a.ipynb", "01_b.ipynb", "notes.ipynb"):
        _notebook(tmp_path / name, "# x")
    assert [p.name for p in find_chapters(tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"]


@pytest.mark.parametrize("names, message", [(("00_a.ipynb", "02_c.ipynb"), "expected chapter 01 after 00_a.ipynb, found 02_c.ipynb"),
                                            (("00_a.ipynb", "01_b.ipynb", "01_x.ipynb"),
                                             "two chapters numbered 01: 01_b.ipynb, 01_x.ipynb")])
def test_a_gap_or_a_duplicate_number_stops_the_build(tmp_path, names, message):
    for name in names:
        _notebook(tmp_path / name, "# x")
    with pytest.raises(SystemExit, match=message):
        find_chapters(tmp_path)


def test_title_and_summary_come_from_the_first_cell(tmp_path):
    path = tmp_path / "03_two_d.ipynb"
    _notebook(path, "# 03 · Convolution in 2D\n\nA grid of numbers $x_{ij}$ slides. Then more.\n\n**Goals**")
    assert chapter_title(path) == "Convolution in 2D"
    assert chapter_summary(path) == "A grid of numbers $x_{ij}$ slides."


def test_real_notebooks_are_in_order():
    chapters = find_chapters(REPO / "notebooks")
    assert [int(p.name[:2]) for p in chapters] == list(range(len(chapters)))


# --------------------------------------------------------------------------- link rewriting


def test_links_to_repository_files_off_the_site_become_text(tmp_path):
    pytest.importorskip("nbformat")
    from build_site import rewrite_links

    source = REPO / "docs" / "instructors.md"
    page = tmp_path / "src" / "instructors.md"
    chapter = REPO / "notebooks" / "05_fast_convolution.ipynb"
    site_files = {chapter.resolve(): tmp_path / "src" / "chapters" / chapter.name}
    text = ("See [the kernels](../cnncourse/kernels/) and [chapter 5](../notebooks/05_fast_convolution.ipynb#top), "
            "[CuPy](https://cupy.dev) and [nothing](../no/such/file.md).")
    out = rewrite_links(text, source, page, site_files)
    assert "the kernels (`cnncourse/kernels` in the repository)" in out
    assert "[chapter 5](chapters/05_fast_convolution.ipynb#top)" in out
    assert "[CuPy](https://cupy.dev)" in out
    assert "[nothing](../no/such/file.md)" in out  # left alone: the strict build reports it


def test_images_in_the_repository_are_copied_beside_the_page(tmp_path):
    pytest.importorskip("nbformat")
    from build_site import rewrite_links

    (tmp_path / "notebooks" / "figures").mkdir(parents=True)
    (tmp_path / "notebooks" / "figures" / "a.png").write_bytes(b"png")
    (tmp_path / "notebooks" / "figures" / "b.png").write_bytes(b"png")
    source = tmp_path / "notebooks" / "01_x.ipynb"
    page = tmp_path / "src" / "chapters" / "01_x.ipynb"
    text = '![a](figures/a.png) and <img src="figures/b.png" width="200"> and ![c](figures/missing.png)'
    assert rewrite_links(text, source, page, {}) == text
    assert (page.parent / "figures" / "a.png").exists() and (page.parent / "figures" / "b.png").exists()
    assert not (page.parent / "figures" / "missing.png").exists()  # left for the strict build to report


def test_a_live_widget_output_becomes_text_and_gets_the_explorer_note(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from build_site import EXPLORER_NOTE, WIDGET_VIEW, chapter_page

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · Title"),
                nbformat.v4.new_code_cell("cc.widgets.filter_playground(image)", outputs=[
                    nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "abc", "version_major": 2,
                                                                               "version_minor": 0}})])]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    source, page = tmp_path / "03_title.ipynb", tmp_path / "src" / "chapters" / "03_title.ipynb"
    nbformat.write(nb, source)
    chapter_page(source, page, {})
    built = nbformat.read(page, as_version=4)
    assert "widgets" not in built.metadata
    code = next(c for c in built.cells if c.cell_type == "code")
    assert WIDGET_VIEW not in code.outputs[0].data and "interactive widget" in code.outputs[0].data["text/plain"]
    after = built.cells[built.cells.index(code) + 1]
    assert after.cell_type == "markdown" and after.source == EXPLORER_NOTE
    assert "Work through this chapter" in built.cells[1].source  # the box under the title


def test_summary_comes_from_the_readme_table_when_it_lists_the_chapter(tmp_path):
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "05_fast.ipynb"
    _notebook(path, "# 05 · Fast\n\nNotebook 04 was slow.")
    (tmp_path / "README.md").write_text("| # | notebook | what you learn |\n|---|---|---|\n"
                                        "| 05 | [Fast](notebooks/05_fast.ipynb) | im2col, the FFT, the GPU |\n")
    assert chapter_summary(path) == "im2col, the FFT, the GPU"
    (tmp_path / "README.md").write_text("# no table\n")
    assert chapter_summary(path) == "Notebook 04 was slow."
