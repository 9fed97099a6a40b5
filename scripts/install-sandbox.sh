#!/usr/bin/env bash
# Make bubblewrap available, so `autograder grade` can run every student's kernel in a sandbox (docs/grading.md).
#
#   bash scripts/install-sandbox.sh
#
# - bubblewrap that can already create namespaces here (`bwrap --unshare-all ... /bin/true`) is used as it is.
# - Otherwise it is installed from Debian/Ubuntu (apt-get as root, waiting up to 5 minutes for another apt to
#   release the package lock instead of failing at once).
# Idempotent. Exit codes: 0 the sandbox works; 2 it could not be made to work (the message says why and what to do;
# `autograder grade --sandbox none` then grades unsandboxed, which is safe only for trusted submissions).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

works() {
  command -v bwrap >/dev/null 2>&1 &&
    bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true >/dev/null 2>&1
}

if works; then
  echo "sandbox: bubblewrap $(bwrap --version | awk '{print $2}') works here"
  exit 0
fi
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "sandbox: bubblewrap is not installed; install the package 'bubblewrap' (root; on Debian/Ubuntu:" \
         "apt-get install bubblewrap), or grade with --sandbox none (trusted submissions only)" >&2
    exit 2
  fi
  echo "sandbox: installing bubblewrap (apt-get) ..."
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q bubblewrap >/dev/null ||
    { apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q bubblewrap >/dev/null; } || {
    echo "sandbox: apt-get could not install bubblewrap (no package index or no network?); install it by hand" >&2
    exit 2
  }
fi
if works; then
  echo "sandbox: bubblewrap $(bwrap --version | awk '{print $2}') installed and works"
  exit 0
fi
echo "sandbox: bubblewrap is installed but cannot create namespaces here ($(bwrap --unshare-all --ro-bind / / \
/bin/true 2>&1 | head -1)); allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run" \
     "as root, or grade with --sandbox none (trusted submissions only)" >&2
exit 2
