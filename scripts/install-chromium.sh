#!/bin/sh
# Headless Chromium, in which tests/test_surgeon.py opens the report `surgisim assess` writes:
# Debian's package, installed once (nothing is done when a chromium is already on the PATH).
set -e
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install Chromium with your system's package manager (tests/test_surgeon.py needs it)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
