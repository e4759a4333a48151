"""Check a built course site: links, images, what it loads, and the order of the chapters.

    python site/check_site.py build/site [--chapters 00_a.ipynb 01_b.ipynb ...]

Returns (and prints) a list of problems; exit status 1 when there is any:

- a relative link or image whose file is not in the site, or whose ``#fragment``
  names no element of the page it points to;
- anything loaded (script, stylesheet, image, font, iframe) from another host,
  also ``url(...)`` in the site's CSS files;
- the landing page not listing every chapter, in course order, or a chapter
  whose "previous"/"next" links skip or swap a chapter.

Links into ``lite/`` (the JupyterLite edition, published beside the site) are
checked only when that folder exists.
"""
from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

OPTIONAL_ROOTS = ("lite",)
LOADING = {("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"), ("video", "src"),
           ("audio", "src"), ("embed", "src"), ("object", "data"), ("image", "href"), ("use", "href")}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)|@import\s+['\"]([^'\"]+)['\"]")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _is_remote(url: str) -> bool:
    return url.startswith("//") or bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url))


def _local_target(site: Path, page: Path, url: str) -> tuple[Path | None, str]:
    """(file the URL points to, fragment); (None, '') for URLs that are not files of the site."""
    if _is_remote(url) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):
        return None, ""
    parts = urlsplit(url)
    if not parts.path:
        return page, unquote(parts.fragment)
    target = (site / parts.path.lstrip("/")) if parts.path.startswith("/") else (page.parent / unquote(parts.path))
    target = Path(*target.parts)  # keep '..' for resolve()
    target = target.resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def _loads(tag: str, attrs: dict) -> list[str]:
    urls = [attrs[a] for (t, a) in LOADING if t == tag and attrs.get(a)]
    if tag == "link" and attrs.get("href"):
        rel = attrs.get("rel", "").lower().split()
        if {"stylesheet", "preload", "icon", "modulepreload", "prefetch", "manifest"} & set(rel) or "icon" in rel:
            urls.append(attrs["href"])
    if attrs.get("srcset"):
        urls += [item.strip().split()[0] for item in attrs["srcset"].split(",") if item.strip()]
    return urls


def _chapter_href(href: str, names: list[str]) -> str | None:
    stem = urlsplit(href).path.rsplit("/", 1)[-1].removesuffix(".html")
    return stem if stem in names else None


def check_site(site: Path, chapters: list[str] | None = None) -> list[str]:
    site = Path(site).resolve()
    problems: list[str] = []
    if not (site / "index.html").exists():
        return [f"{site}/index.html is missing: the site was not built"]
    pages = {path: _parse(path) for path in site.rglob("*.html")
             if path.relative_to(site).parts[0] not in ("lite", "_static")}  # _static: theme macros, not pages
    for path, page in pages.items():
        where = path.relative_to(site).as_posix()
        for tag, attrs in page.tags:
            for url in _loads(tag, attrs):
                if _is_remote(url):
                    problems.append(f"{where}: <{tag}> loads {url} from another host")
                    continue
                target, _ = _local_target(site, path, url)
                if target is not None and not target.exists():
                    problems.append(f"{where}: <{tag}> {url}: no such file in the site")
            href = attrs.get("href") if tag == "a" else None
            if not href:
                continue
            target, fragment = _local_target(site, path, href)
            if target is None:
                continue
            try:
                top = target.relative_to(site).parts[0]
            except (ValueError, IndexError):
                problems.append(f"{where}: link {href} leaves the site")
                continue
            if not target.exists():
                if top in OPTIONAL_ROOTS and not (site / top).exists():
                    continue
                problems.append(f"{where}: broken link {href}")
            elif fragment and target.suffix == ".html" and target in pages and fragment not in pages[target].ids:
                problems.append(f"{where}: link {href}: {target.relative_to(site).as_posix()} has no #{fragment}")
    for css in site.rglob("*.css"):
        for match in CSS_URL.finditer(css.read_text(encoding="utf-8", errors="replace")):
            url = match.group(1) or match.group(2)
            if _is_remote(url):
                problems.append(f"{css.relative_to(site).as_posix()}: loads {url} from another host")
    if chapters:
        problems += _check_order(site, pages, [Path(name).stem for name in chapters])
    return problems


def _check_order(site: Path, pages: dict, names: list[str]) -> list[str]:
    problems = []
    index = pages[site / "index.html"]
    listed: list[str] = []
    for tag, attrs in index.tags:
        name = _chapter_href(attrs.get("href", ""), names) if tag == "a" else None
        if name and name not in listed:
            listed.append(name)
    if listed != names:
        problems.append(f"index.html lists the chapters as {listed}, the course order is {names}")
    for k, name in enumerate(names):
        path = site / "chapters" / f"{name}.html"
        if path not in pages:
            problems.append(f"chapters/{name}.html is missing")
            continue
        links = {cls: attrs.get("href", "") for tag, attrs in pages[path].tags if tag == "a"
                 for cls in ("left-prev", "right-next") if cls in attrs.get("class", "").split()}
        if k > 0 and _chapter_href(links.get("left-prev", ""), names) != names[k - 1]:
            problems.append(f"chapters/{name}.html: 'previous' goes to {links.get('left-prev')!r}, not {names[k - 1]}")
        if k + 1 < len(names) and _chapter_href(links.get("right-next", ""), names) != names[k + 1]:
            problems.append(f"chapters/{name}.html: 'next' goes to {links.get('right-next')!r}, not {names[k + 1]}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--chapters", nargs="*", help="chapter notebook names in course order")
    args = parser.parse_args(argv)
    problems = check_site(args.site, args.chapters)
    for problem in problems:
        print(problem)
    print(f"check_site: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
