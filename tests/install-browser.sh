#!/bin/sh
# Installs Debian's Chromium for the dashboard's browser test (tests/dashboard/test_browser.py),
# unless a Chromium is already there. Playwright drives it; its own browser download is never used.
set -e
if command -v chromium >/dev/null 2>&1 || [ -n "$WHITESPACE_CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/install-browser.sh: no apt-get here; install Chromium and set WHITESPACE_CHROMIUM to its path" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "Installing Debian's chromium package for the browser test..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version
