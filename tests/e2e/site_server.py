"""Serve the built website and the JupyterLite edition on 127.0.0.1, laid out as they are published.

``/`` is ``build/site`` and ``/lite/`` is ``build/lite``, as on GitHub Pages, so that
the site's links into the lite edition resolve.  Used by tests/e2e/test_site*.py.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import posixpath
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, roots: dict[str, Path], **kwargs):
        self.roots = roots
        super().__init__(*args, directory=str(roots[""]), **kwargs)

    def translate_path(self, path: str) -> str:
        path = posixpath.normpath(unquote(urlsplit(path).path))
        trailing = "/" if urlsplit(self.path).path.endswith("/") else ""
        for prefix, root in sorted(self.roots.items(), key=lambda item: -len(item[0])):
            if prefix and (path == f"/{prefix}" or path.startswith(f"/{prefix}/")):
                rest = path[len(prefix) + 1:].lstrip("/")
                return str(root / rest) + trailing
        return str(self.roots[""] / path.lstrip("/")) + trailing

    def log_message(self, format, *args):  # noqa: A002  (quiet: the tests record requests themselves)
        pass


@contextlib.contextmanager
def serve(site: Path, lite: Path | None = None):
    """Yield the base URL (``http://127.0.0.1:PORT/``) of a server for ``site`` (and ``lite`` under /lite/)."""
    roots = {"": Path(site)}
    if lite is not None:
        roots["lite"] = Path(lite)
    handler = functools.partial(_Handler, roots=roots)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
