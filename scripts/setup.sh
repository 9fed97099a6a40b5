#!/usr/bin/env bash
# One-command setup: a venv with the pinned course environment. Idempotent: re-running with an unchanged
# pyproject.toml only checks the stamp. Usage: bash scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"

want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "setup: $VENV is up to date"; exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup: the course needs Python 3.10 or newer; '$PYTHON' is $("$PYTHON" -V 2>&1 || echo missing)." >&2
  echo "       Install Python 3.11 and rerun with PYTHON=python3.11 make setup" >&2
  exit 2
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

# Learners without an NVIDIA GPU should not download gigabytes of CUDA libraries. Try PyTorch's CPU wheel index
# first (a few seconds' probe); where it cannot be reached, fall back to the default index, which always works.
TORCH_PINS=$(grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"' | tr '\n' ' ')
CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
if [[ "${WORKBOOK_TORCH:-auto}" != "default" ]] && ! command -v nvidia-smi >/dev/null \
   && ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if "$VENV/bin/python" - "$CPU_INDEX" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PY
  then
    echo "setup: no NVIDIA GPU; installing the CPU build of $TORCH_PINS"
    "${PIP[@]}" install --index-url "$CPU_INDEX" $TORCH_PINS \
      || echo "setup: the CPU build failed to install; falling back to the default build"
  else
    echo "setup: the CPU wheel index is unreachable; installing the default torch build (larger download)"
  fi
fi

echo "setup: installing the course environment into $VENV (first time: a few minutes)"
"${PIP[@]}" install --progress-bar on -e '.[dev]'
"${PIP[@]}" check
echo "$want" > "$STAMP"
echo "setup: done in $(( $(date +%s) - start )) s; $(du -sh "$VENV" | cut -f1) in $VENV"
