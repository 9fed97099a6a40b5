#!/usr/bin/env bash
# Make a container engine available for the Docker lab, on a machine that may have none (CI, offline boxes).
#
#   bash scripts/container-engine.sh [--base IMAGE]... [--wheels REQUIREMENTS]... [--env]
#
# - A Docker engine that answers (`docker info`) is used as it is: nothing is installed or changed.
# - Otherwise podman + buildah + runc + debootstrap come from Debian (apt-get, root), and the course's OWN
#   containers.conf / storage.conf are written under the course's container cache (~/.cache/mlinfra-workbook/containers/), so the course never touches a learner's
#   images. Export CONTAINERS_CONF and CONTAINERS_STORAGE_CONF from `--env` to use that storage.
# - --base IMAGE: where no registry answers, a local stand-in for IMAGE (e.g. python:3.11-slim) is built once per
#   machine with debootstrap (Debian bookworm minbase + python3 + venv; its rootfs is cached in
#   .state/containers/) and tagged with IMAGE, so an unmodified Dockerfile builds. Its /etc/pip.conf points pip at
#   /wheels, which `autograder dockerfile --build` mounts from .state/containers/wheels during the build.
# - --wheels REQUIREMENTS: download the wheels that requirements file needs (Linux x86_64, CPython 3.11) into
#   .state/containers/wheels, so `pip install` inside a build needs no index at all.
# - --env: print `export ...` lines for the engine found (eval "$(bash scripts/container-engine.sh --env)").
#
# Idempotent: a second run with the same arguments installs, builds and downloads nothing.
# Exit codes: 0 an engine is ready; 2 it could not be made ready (the message says why and what to do).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# A machine-wide cache, not the checkout's .state/: the base image, the wheels and the layer cache cost minutes to
# make and serve every checkout on this machine alike (CI clones afresh for every run). Still the course's own
# private storage: a learner's images are never touched.
STATE="${WORKBOOK_CONTAINER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlinfra-workbook/containers}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
SUITE="${CONTAINER_BASE_SUITE:-bookworm}"
MIRROR="${CONTAINER_BASE_MIRROR:-http://deb.debian.org/debian}"

bases=() reqs=() print_env=0
while (($#)); do
  case "$1" in
    --base) bases+=("$2"); shift 2 ;;
    --wheels) reqs+=("$2"); shift 2 ;;
    --env) print_env=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container-engine: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "container-engine: $*" >&2; }
die() { say "$*"; exit 2; }

# 1. A Docker engine that answers wins: use it as the learner configured it.
if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then
  say "a Docker engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)); nothing to set up"
  ((print_env)) && echo "export AUTOGRADER_ENGINE=docker"
  say "next: make docker-check (checks workspace/lab06-docker/Dockerfile, then builds, runs and assesses it)"
  exit 0
fi

# 2. podman and friends from Debian.
need=()
for tool in podman buildah runc debootstrap slirp4netns; do command -v "$tool" >/dev/null || need+=("$tool"); done
[[ -x /usr/libexec/podman/catatonit ]] || need+=(catatonit)  # what `--init` runs
if ((${#need[@]})); then
  command -v apt-get >/dev/null || die "no Docker engine and no apt-get to install ${need[*]}: install Docker or podman yourself"
  [[ $(id -u) == 0 ]] || die "no Docker engine; installing ${need[*]} needs root: sudo make container-engine"
  say "no Docker engine answers; installing ${need[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  # Wait up to 5 minutes for another apt (unattended-upgrades, a parallel job) instead of failing on its lock.
  APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2)
  "${APT[@]}" update -qq >&2 || die "apt-get update failed: is the Debian mirror reachable? Rerun make container-engine"
  "${APT[@]}" install -y -qq --no-install-recommends podman buildah runc debootstrap slirp4netns catatonit uidmap \
    ca-certificates >&2 || die "apt-get install of podman buildah runc debootstrap failed (see above)"
fi

# 3. The course's own engine configuration and storage (docs/decisions.md, Containers: what works).
mkdir -p "$STATE/storage" "$STATE/run" "$STATE/tmp" "$STATE/wheels"
cat > "$STATE/containers.conf.new" <<EOF
# Written by scripts/container-engine.sh: the course's private podman configuration.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
image_default_format = "docker"
[network]
default_rootless_network_cmd = "slirp4netns"
EOF
# overlay from the very first command, or every container exit hangs for 20 s.
cat > "$STATE/storage.conf.new" <<EOF
# Written by scripts/container-engine.sh: the course's private image storage (podman system reset -f clears it).
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
for f in containers.conf storage.conf; do
  cmp -s "$STATE/$f.new" "$STATE/$f" && rm "$STATE/$f.new" || mv "$STATE/$f.new" "$STATE/$f"
done
export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" TMPDIR="$STATE/tmp"
podman info >/dev/null 2>&1 || die "podman is installed but 'podman info' fails: run it with CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF to see why"

# 4. Local stand-ins for base images no registry can serve here.
rootfs_tar="$STATE/base-$SUITE-python3.tar"
make_rootfs() {
  [[ -s "$rootfs_tar" ]] && return 0
  [[ $(id -u) == 0 ]] || die "building the base image with debootstrap needs root"
  local dir="$STATE/rootfs.tmp"
  rm -rf "$dir"
  say "building a Debian $SUITE base with python3 (debootstrap, about a minute, once per machine)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$dir" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 \
    || { rm -rf "$dir"; die "debootstrap failed (log: $STATE/debootstrap.log): is $MIRROR reachable?"; }
  # pip inside a build finds wheels in /wheels (mounted by the course's build) before any index, and gives up on
  # an unreachable index at once instead of retrying for minutes.
  printf '[global]\nfind-links = /wheels\nretries = 0\ntimeout = 10\ndisable-pip-version-check = true\n' \
    > "$dir/etc/pip.conf"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$dir"
}
for image in "${bases[@]}"; do
  # Short names resolve to docker.io/library/NAME, which is what FROM asks for.
  full="$image"
  [[ "$full" == */* ]] || full="docker.io/library/$full"
  [[ "$full" == *:* || "$full" == *@* ]] || full="$full:latest"
  if podman image exists "$full"; then
    say "$image is in the course's image store"
    continue
  fi
  if timeout 60 podman pull -q "$full" >/dev/null 2>&1; then
    say "pulled $image"
    continue
  fi
  make_rootfs
  id=$(podman import -q --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$rootfs_tar" "$full") \
    || die "podman import of $rootfs_tar as $image failed"
  say "no registry serves $image here; tagged a local Debian $SUITE stand-in as $full (${id:0:12})"
done

# 5. Wheels for pip inside the build, downloaded on the host (which may reach an index the build cannot).
extra_links=()
[[ -d /opt/wheels ]] && extra_links=(--find-links /opt/wheels)  # wheels this machine keeps on disk
for req in "${reqs[@]}"; do
  [[ -f "$req" ]] || die "no requirements file $req"
  stamp="$STATE/wheels/.$(sha256sum "$req" | cut -c1-16)"
  [[ -f "$stamp" ]] && { say "wheels for $req are in $STATE/wheels"; continue; }
  say "downloading the wheels $req needs into $STATE/wheels"
  "$PY" -m pip download --quiet --disable-pip-version-check --retries 0 --timeout 20 \
    --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp \
    ${extra_links[@]+"${extra_links[@]}"} --find-links "$STATE/wheels" -d "$STATE/wheels" -r "$req" >&2 \
    || die "could not download the wheels for $req (see above): is PyPI reachable?"
  touch "$stamp"
done

if ((print_env)); then
  echo "export AUTOGRADER_ENGINE=podman"
  echo "export CONTAINERS_CONF='$CONTAINERS_CONF'"
  echo "export CONTAINERS_STORAGE_CONF='$CONTAINERS_STORAGE_CONF'"
fi
say "podman $(podman version --format '{{.Client.Version}}') is ready with the course's storage in $STATE"
say "next: make docker-check (checks workspace/lab06-docker/Dockerfile, then builds, runs and assesses it with"
say "      podman); \`autograder doctor\` now reports this engine"
