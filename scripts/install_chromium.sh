#!/usr/bin/env bash
# Headless Chromium for the browser test (tests/test_browse.py, marked slow): Debian's `chromium` package, installed
# once by apt. Nothing downloads a browser at test time; without it the test is skipped and says so.
#   sudo scripts/install_chromium.sh && pytest -m slow tests/test_browse.py
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install Chromium with your system's package manager (the test looks for 'chromium')" >&2
  exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
chromium --version
