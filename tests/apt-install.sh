#!/bin/sh
# Installs the Debian packages given as arguments (apt-get, through sudo when not root).
set -e
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/apt-install.sh: no apt-get here; install the Debian packages '$*' (or their equivalents) yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "Installing Debian's $* for the tests..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
