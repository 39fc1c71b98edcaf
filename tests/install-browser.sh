#!/bin/sh
# Installs Debian's Chromium for the dashboard's browser test (tests/dashboard/test_browser.py),
# unless a Chromium is already there. Playwright drives it; its own browser download is never used.
set -e
if command -v chromium >/dev/null 2>&1 || [ -n "$WHITESPACE_CHROMIUM" ]; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" chromium
chromium --version
