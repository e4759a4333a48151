"""The course website (make site) in headless Chromium, served from 127.0.0.1 with no internet.

The landing page lists every chapter in course order; each chapter page shows its math
rendered by MathJax (no raw ``$$`` left) and its figures; "next"/"previous" walk the
chapters in order; searching "im2col" finds chapter 05; each chapter links its student
copy.  Every request the pages make is recorded through Playwright: any that leaves
127.0.0.1 is aborted and fails the test (the site must read the same offline), and so
does a local file the pages ask for that is not there.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import pytest

from e2e_lab import REPO, artifact
from site_server import serve

sys.path.insert(0, str(REPO / "site"))
from course import find_chapters  # noqa: E402

SITE = REPO / "build" / "site"
LITE = REPO / "build" / "lite"
CHAPTERS = find_chapters(REPO / "notebooks")
NAMES = [path.stem for path in CHAPTERS]


SITE_PYTHON = REPO / ".venv-site" / "bin" / "python"  # make site's own venv (Sphinx, MyST-NB, the theme)
LITE_PYTHON = REPO / ".venv-lite" / "bin" / "python"  # make lite's own venv (jupyterlite-core, the Pyodide kernel)


def build_once(script: str, output: Path, python: Path, make_target: str) -> None:
    """Build ``output`` with make's own venv unless it is there already (make test-browser builds it first)."""
    if (output / "index.html").exists():
        return
    if not python.exists():
        pytest.skip(f"{output.relative_to(REPO)} is not built and {python.parent.parent.name} does not exist: "
                    f"run `make {make_target}`")
    subprocess.run([str(python), str(REPO / "site" / script), "--out", str(output)], check=True, cwd=REPO,
                   timeout=600)


@pytest.fixture(scope="session")
def site_url():
    build_once("build_site.py", SITE, SITE_PYTHON, "site")
    with serve(SITE, LITE if (LITE / "index.html").exists() else None) as url:
        yield url


class Offline:
    """A browser context whose every request is recorded; anything not on our server is aborted."""

    def __init__(self, browser, base: str, service_workers: str = "block"):
        self.base = base
        self.external: list[str] = []
        self.missing: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers=service_workers)
        self.context.route("**/*", self._route)
        self.context.on("request", self._seen)
        self.context.on("response", self._answered)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))

    def _local(self, url: str) -> bool:
        return url.startswith(self.base) or url.startswith(("data:", "blob:", "about:"))

    def _route(self, route):
        if self._local(route.request.url):
            route.continue_()
        else:
            if route.request.url not in self.external:
                self.external.append(route.request.url)
            route.abort()

    def _seen(self, request):
        if not self._local(request.url) and request.url not in self.external:
            self.external.append(request.url)

    def _answered(self, response):
        if response.status >= 400 and not response.url.endswith("favicon.ico"):
            self.missing.append(f"{response.status} {response.url}")

    def goto(self, path: str):
        self.page.goto(urljoin(self.base, path), wait_until="load")
        return self.page

    def assert_offline(self):
        assert not self.external, f"requests that left 127.0.0.1 (the site must work offline): {self.external}"
        assert not self.missing, f"files the pages asked for that the site does not have: {self.missing}"


@pytest.fixture
def site(browser, site_url):
    visit = Offline(browser, site_url)
    try:
        yield visit
    finally:
        visit.context.close()


def _mathjax_done(page, timeout=30_000):
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=timeout)
    page.evaluate("() => MathJax.startup.promise")


# --------------------------------------------------------------------------- tests


def test_index_lists_every_chapter_in_course_order(site):
    page = site.goto("index.html")
    hrefs = page.eval_on_selector_all("article a[href*='chapters/']", "els => els.map(e => e.getAttribute('href'))")
    listed = []
    for href in hrefs:
        stem = href.split("#")[0].rsplit("/", 1)[-1].removesuffix(".html")
        if stem in NAMES and stem not in listed:
            listed.append(stem)
    assert listed == NAMES, f"the landing page lists {listed}"
    assert len(NAMES) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    nav = page.eval_on_selector_all(".bd-sidenav a[href*='chapters/']", "els => els.map(e => e.getAttribute('href'))")
    assert [href.rsplit("/", 1)[-1].removesuffix(".html") for href in nav] == NAMES, f"the sidebar lists {nav}"
    text = page.inner_text("article")
    for needed in ("make lab", "make test", "Who it is for"):
        assert needed in text, f"the landing page should say {needed!r}"
    page.screenshot(path=artifact("site_index.png"))
    site.assert_offline()


@pytest.mark.parametrize("name", NAMES)
def test_chapter_page_renders_math_and_figures(site, name):
    page = site.goto(f"chapters/{name}.html")
    _mathjax_done(page)
    source = (REPO / "notebooks" / f"{name}.ipynb").read_text()
    has_math = "$" in "".join("".join(c["source"]) for c in json.loads(source)["cells"] if c["cell_type"] == "markdown")
    rendered = page.locator("article mjx-container").count()
    if has_math:
        assert rendered > 0, f"{name}: no formula rendered by MathJax"
    text = page.inner_text("article")
    assert "$$" not in text, f"{name}: raw $$ left in the page"
    assert "\\frac" not in text and "\\sum" not in text, f"{name}: raw LaTeX left in the page"
    figures = page.eval_on_selector_all(
        "article .cell_output img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth])")
    if '"image/png"' in source:
        assert figures, f"{name}: the stored figures are missing from the page"
        broken = [src for src, width in figures if not width]
        assert not broken, f"{name}: figures that did not load: {broken}"
    link = page.locator("a.student-copy")
    assert link.count() == 1, f"{name}: no link to the student copy"
    student = page.request.get(urljoin(page.url, link.get_attribute("href")))
    assert student.ok, f"{name}: the student copy link is broken"
    notebook = json.loads(student.body())
    assert notebook["nbformat"] == 4 and not any(c.get("outputs") for c in notebook["cells"]), \
        f"{name}: the student copy should have its outputs cleared"
    cells = json.loads(source)["cells"]
    if any(c["cell_type"] == "code" and "### BEGIN SOLUTION" in "".join(c["source"]) for c in cells):
        assert "Show the worked solution" in text, f"{name}: worked solutions should be folded behind a toggle"
    if "[interactive widget" in source:
        assert "opens an interactive explorer" in text, f"{name}: an explorer cell without the note on running it"
    if name == "01_convolution_1d":
        page.screenshot(path=artifact("site_chapter_01.png"))
    site.assert_offline()


def test_next_and_previous_walk_the_chapters_in_order(site):
    page = site.goto(f"chapters/{NAMES[0]}.html")
    for name in NAMES[1:]:
        page.locator("a.right-next").first.click()
        page.wait_for_url(f"**/chapters/{name}.html")
    for name in reversed(NAMES[:-1]):
        page.locator("a.left-prev").first.click()
        page.wait_for_url(f"**/chapters/{name}.html")
    page.locator("a.left-prev").first.click()
    page.wait_for_url("**/index.html")
    site.assert_offline()


def test_search_for_im2col_finds_chapter_05(site):
    page = site.goto("index.html")
    page.keyboard.press("Control+k")
    box = page.locator("#pst-search-dialog input[name='q']")
    box.wait_for(state="visible")
    box.fill("im2col")
    box.press("Enter")
    page.wait_for_url("**/search.html?q=im2col*")
    page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
    results = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    fast = [n for n in NAMES if n.startswith("05_")]
    assert fast and any(fast[0] in href for href in results), f"searching im2col should find chapter 05: {results}"
    page.screenshot(path=artifact("site_search_im2col.png"))
    site.assert_offline()


def test_instructors_guide_is_on_the_site(site):
    page = site.goto("instructors.html")
    assert "cnncourse release" in page.inner_text("article")
    site.assert_offline()
