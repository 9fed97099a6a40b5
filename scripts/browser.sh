#!/usr/bin/env bash
# Make headless Chromium available for the browser tests (tests/browser/): Debian's package, installed when
# missing. Usage: bash scripts/browser.sh   (make browser). Prints the browser's path and version.
# Exit codes: 0 a browser is ready; 2 it could not be installed (the message says what to do).
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then
    echo "browser: $(command -v "$name") ($("$name" --version 2>/dev/null | head -1))"; exit 0
  fi
done
command -v apt-get >/dev/null || { echo "browser: no Chromium and no apt-get: install Chromium, then rerun" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "browser: installing Chromium needs root: sudo make browser" >&2; exit 2; }
echo "browser: installing Debian's chromium (about 100 MB; waits for another apt's lock up to 5 minutes)"
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2)
"${APT[@]}" update -qq || { echo "browser: apt-get update failed: is the Debian mirror reachable?" >&2; exit 2; }
"${APT[@]}" install -y -qq --no-install-recommends chromium >/dev/null \
  || { echo "browser: apt-get install chromium failed (see above)" >&2; exit 2; }
echo "browser: $(command -v chromium) ($(chromium --version | head -1)); next: the browser tests run in make test"
