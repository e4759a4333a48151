"""Sphinx configuration of the course website (``make site``).

The sources are not this folder: ``site/build_site.py`` assembles them in
``build/site-src/`` (landing page, the stored executed notebooks, the
instructors' guide, the student copies) and runs Sphinx with ``-c site/``.
Nothing is executed (``nb_execution_mode = "off"``) and nothing is loaded from
another host: MathJax comes from the ``sphinx-mathjax-offline`` wheel and is
copied into ``_static/mathjax/``, the theme ships its own fonts, and the
ipywidgets loader (require.js and the widget manager from a CDN) is switched off.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

project = "cnncourse"
author = "the cnncourse authors"
copyright = "the cnncourse authors, MIT licence"
html_title = "Convolutional networks from the ground up"

extensions = ["myst_nb"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "student", "**.ipynb_checkpoints"]
root_doc = "index"

# --- notebooks: shown exactly as stored ----------------------------------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # the default loads require.js and the widget manager from CDNs
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "html_image"]
myst_heading_anchors = 6  # links to any heading of a chapter resolve

# Strict mode (sphinx-build -W) turns every remaining warning into an error: a broken
# cross-reference or a missing image fails the build.  Only the heading-level lint is
# silenced, as a notebook may legitimately jump from a title to a sub-subsection.
suppress_warnings = ["myst.header"]

# --- math: MathJax 3 served from the site itself ---------------------------------------------------
mathjax_path = "mathjax/tex-chtml.js"
_MATHJAX_KEEP = ("tex-chtml.js", "input", "output/chtml.js", "output/chtml", "ui", "a11y", "adaptors")


def _mathjax_dir() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")  # the wheel's package name has dashes
    if spec is None or spec.origin is None:
        raise RuntimeError("MathJax for the site comes from the 'sphinx-mathjax-offline' wheel: "
                           "install the site extra (make site does)")
    return Path(spec.origin).parent / "static" / "mathjax"


def _copy_mathjax(app, exception) -> None:
    """Copy the CommonHTML build of MathJax (and the extensions it loads on demand) into _static/mathjax."""
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_dir(), Path(app.outdir) / "_static" / "mathjax"
    for name in _MATHJAX_KEEP:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.json"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def setup(app):
    _mathjax_dir()  # fail at the start, not after the whole build, when MathJax is missing
    app.connect("build-finished", _copy_mathjax)


# --- HTML ----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False  # the notebooks' JSON is not needed beside each page
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,  # would offer the source notebook; each chapter links its student copy
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": True,
}
