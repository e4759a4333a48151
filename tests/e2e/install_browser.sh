#!/usr/bin/env bash
# Set up the end-to-end browser tests (tests/e2e): a Chromium binary and Playwright for Python.
#   - Chromium: Debian/Ubuntu's package, installed with apt-get when missing and we are root.
#     (Playwright's own browser download, `playwright install`, is deliberately not used.)
#   - Playwright: pip-installed into .venv when missing.
# Never fails the build for a missing browser: it says why, and the tests then skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/../.."
VENV_PY="${VENV_PY:-.venv/bin/python}"
PLAYWRIGHT_SPEC="${PLAYWRIGHT_SPEC:-playwright==1.65.2}"

find_chromium() {
    if [ -n "${CNNCOURSE_CHROMIUM:-}" ] && [ -x "${CNNCOURSE_CHROMIUM}" ]; then echo "$CNNCOURSE_CHROMIUM"; return 0; fi
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        command -v "$name" && return 0
    done
    return 1
}

if browser=$(find_chromium); then
    echo "install_browser: Chromium present: $browser"
elif [ "$(id -u)" != "0" ]; then
    echo "install_browser: no Chromium, and not root: cannot apt-get install it. Install the 'chromium' package" \
         "(or set CNNCOURSE_CHROMIUM=/path/to/chrome); the e2e tests will skip until then."
elif ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no Chromium and no apt-get on this system: install Chromium with your package manager" \
         "(or set CNNCOURSE_CHROMIUM); the e2e tests will skip until then."
else
    echo "install_browser: installing Chromium with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
        echo "install_browser: Chromium installed: $(find_chromium)"
    else
        echo "install_browser: apt-get could not install 'chromium' (no such package here, or no network);" \
             "the e2e tests will skip until a Chromium is installed."
    fi
fi

if [ ! -x "$VENV_PY" ]; then
    echo "install_browser: $VENV_PY is missing: create the course environment first (make test-fast or make lab)."
    exit 1
fi
if "$VENV_PY" -c "import playwright" 2>/dev/null; then
    echo "install_browser: Playwright present: $("$VENV_PY" -m pip show playwright 2>/dev/null | sed -n 's/^Version: //p')"
else
    echo "install_browser: installing $PLAYWRIGHT_SPEC into .venv ..."
    constraints=()
    [ -f constraints.txt ] && grep -qi '^playwright==' constraints.txt && constraints=(-c constraints.txt) && PLAYWRIGHT_SPEC=playwright
    "$VENV_PY" -m pip install --quiet "${constraints[@]}" "$PLAYWRIGHT_SPEC" \
        || echo "install_browser: pip could not install Playwright; the e2e tests will skip."
fi
exit 0
