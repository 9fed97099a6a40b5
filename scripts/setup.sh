#!/usr/bin/env bash
# One-command setup: a venv with the pinned course environment. Idempotent: re-running with an unchanged
# pyproject.toml only checks the stamp. Usage: bash scripts/setup.sh [VENV_DIR]
#
# Prints a short summary (a line per stage, and the elapsed time while a stage runs); the installers' full output
# goes to .state/setup/install.log. Installs with uv (fetched from PyPI into the venv, about 17 MB; several times
# faster than pip, bytecode compiled at install) and falls back to pip if uv fails. Where no NVIDIA GPU is
# present it first tries PyTorch's CPU-only wheels (about 4 GB smaller): from $TORCH_CPU_WHEELS (a folder of
# wheels), else PyTorch's CPU index ($TORCH_CPU_INDEX). It keeps them only if `import torchvision` works beside
# them, else it installs the default build. WORKBOOK_TORCH=default skips the CPU attempt; WORKBOOK_INSTALLER=pip
# skips uv. docs/setup.md has the measured figures.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"
LOG_DIR=.state/setup
LOG="$LOG_DIR/install.log"

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
mkdir -p "$LOG_DIR"
: > "$LOG"
say() { echo "setup: $*"; }

# Run a command with its output in the log; show the elapsed time and the log's last line while it runs (one
# updating line on a terminal, a line every 20 s otherwise), and the log's tail if it fails.
logged() {
  local what=$1; shift
  echo "== $what: $*" >> "$LOG"
  "$@" >> "$LOG" 2>&1 &
  local pid=$! t0 now last=0 line
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    now=$(( $(date +%s) - t0 ))
    line=$(tail -n 1 "$LOG" 2>/dev/null | tr -d '\r' | cut -c1-70)
    if [[ -t 1 ]]; then
      printf '\r\033[Ksetup: %s ... %3d s  %s' "$what" "$now" "$line"
    elif (( now - last >= 20 )); then
      last=$now; echo "setup: $what ... ${now} s"
    fi
  done
  [[ -t 1 ]] && printf '\r\033[K'
  if wait "$pid"; then return 0; fi
  return 1
}
fail() {
  echo "setup: $1 failed; the last lines of $LOG:" >&2
  tail -n 15 "$LOG" >&2
  echo "setup: fix what they name (network, disk space, Python version) and rerun \`make setup\`" >&2
  exit 1
}

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
logged "updating pip" "${PIP[@]}" install --upgrade pip || fail "updating pip"

# uv reads neither pip.conf nor PIP_* variables: hand it the same indexes, wheel folders, constraints and CA
# bundle that pip is configured with, so both installers see the same packages.
UV=() UV_FLAGS=()
if [[ "${WORKBOOK_INSTALLER:-uv}" == uv ]] && logged "fetching uv" "${PIP[@]}" install uv; then
  UV=("$VENV/bin/uv" pip)
  while IFS= read -r -d '' arg; do UV_FLAGS+=("$arg"); done < <("$PY" - <<'PY'
import subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
flags = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint"}
for line in out.splitlines():
    key, _, value = line.partition("=")
    name, value = key.rsplit(".", 1)[-1], value.strip().strip("'\"")
    if name in flags:
        for item in value.split():
            sys.stdout.write(f"{flags[name]}\0{item}\0")
PY
)
  cert=$("${PIP[@]}" config list 2>/dev/null | sed -n "s/^[^=]*\.cert='\(.*\)'$/\1/p" | head -1 || true)
  [[ -n "$cert" ]] && export SSL_CERT_FILE="$cert"
fi
install() {  # install ARGS... with uv (bytecode compiled, every index searched like pip), else pip
  if ((${#UV[@]})); then
    "${UV[@]}" install --python "$PY" --compile-bytecode --index-strategy unsafe-best-match \
      ${UV_FLAGS[@]+"${UV_FLAGS[@]}"} "$@" && return 0
    echo "== uv failed; retrying with pip" >> "$LOG"
  fi
  "${PIP[@]}" install "$@"
}

# Learners without an NVIDIA GPU should not download gigabytes of CUDA libraries.
TORCH_PINS=$(grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"' | tr '\n' ' ')
CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
cpu_build=""
if [[ "${WORKBOOK_TORCH:-auto}" != "default" ]] && ! command -v nvidia-smi >/dev/null \
   && ! "$PY" -c 'import torch' 2>/dev/null; then
  if [[ -n "${TORCH_CPU_WHEELS:-}" && -d "${TORCH_CPU_WHEELS}" ]]; then
    say "no NVIDIA GPU; trying the CPU build of $TORCH_PINS from $TORCH_CPU_WHEELS"
    # shellcheck disable=SC2086
    logged "installing the CPU build of torch" "${PIP[@]}" install --no-index --find-links "$TORCH_CPU_WHEELS" \
      $TORCH_PINS && cpu_build="$TORCH_CPU_WHEELS"
  elif "$PY" - "$CPU_INDEX" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PY
  then
    say "no NVIDIA GPU; installing the CPU build of $TORCH_PINS (PyTorch's CPU index)"
    # shellcheck disable=SC2086
    logged "installing the CPU build of torch" "${PIP[@]}" install --index-url "$CPU_INDEX" $TORCH_PINS \
      && cpu_build="$CPU_INDEX"
  else
    say "PyTorch's CPU index is unreachable and TORCH_CPU_WHEELS is unset: installing the default torch build"
    say "(it carries about 3 GB of CUDA libraries a CPU never uses; see docs/setup.md)"
  fi
  [[ -n "$cpu_build" || -z "${TORCH_CPU_WHEELS:-}" ]] || say "the CPU build did not install; using the default build"
fi

say "installing the course environment into $VENV ($([[ ${#UV[@]} -gt 0 ]] && echo uv || echo pip); first time: a few minutes; full log: $LOG)"
logged "installing" install -e '.[dev]' || fail "installing the course environment"

if [[ -n "$cpu_build" ]] && ! "$PY" -c 'import torch, torchvision.ops' >> "$LOG" 2>&1; then
  say "torchvision does not import beside the CPU build from $cpu_build: installing the default build instead"
  # shellcheck disable=SC2086
  logged "reinstalling torch" "${PIP[@]}" install --force-reinstall --no-deps $TORCH_PINS \
    || fail "reinstalling torch"
  logged "installing torch's dependencies" install -e '.[dev]' || fail "installing torch's dependencies"
fi

logged "checking the installed set" "${PIP[@]}" check || fail "pip check (conflicting versions)"
"$PY" -c 'import torch, torchvision' >> "$LOG" 2>&1 || fail "import torch, torchvision"
echo "$want" > "$STAMP"
torch_build=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')
say "done in $(( $(date +%s) - start )) s; $(du -sh "$VENV" | cut -f1) in $VENV (torch $torch_build); log: $LOG"
say "next: make lab   (opens the workbook; \`.venv/bin/autograder doctor\` checks this machine)"
