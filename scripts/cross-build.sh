#!/usr/bin/env bash
# Cross-compiles the classroom daemon for Raspberry Pi boards without Docker, using Debian's cross
# toolchains (the `cross` + Docker route is cross.toml). Idempotent: installs only what is missing.
#
#   scripts/cross-build.sh [aarch64|armv7|all]     (default: all)
#
#   aarch64  aarch64-unknown-linux-gnu       Raspberry Pi 3/4/5 (and Zero 2 W) on a 64-bit OS
#   armv7    armv7-unknown-linux-gnueabihf   Raspberry Pi 2/3/4 on 32-bit Raspberry Pi OS
#
# Builds `nimbus-edge --release --features rpi,tls` (release profile: fat LTO, stripped, panic=abort;
# 2-5 minutes per target on 2 cores from an empty cache) into $CARGO_TARGET_DIR (default: ./target), so CI can
# cache that directory. Prints each binary's path and size; the path is
#   $CARGO_TARGET_DIR/<triple>/release/nimbus-edge
# Environment: CARGO_TARGET_DIR (build cache), CARGO_BUILD_JOBS (parallelism), NIMBUS_CROSS_LOCKED=0
# to build without --locked, NIMBUS_EDGE_FEATURES (comma-separated cargo features, default "rpi,tls": the
# Pi images talk to the broker over mqtts:// with its CA pinned, docs/deploy-edge.md).
# Debian/Ubuntu only for the toolchain install (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[cross-build] %s\n' "$*" >&2; }
die() { printf '[cross-build] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

REPO_ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
FEATURES=${NIMBUS_EDGE_FEATURES:-rpi,tls}

case "${1:-all}" in
  aarch64 | aarch64-unknown-linux-gnu) ARCHES=(aarch64) ;;
  armv7 | armv7-unknown-linux-gnueabihf) ARCHES=(armv7) ;;
  all) ARCHES=(aarch64 armv7) ;;
  -h | --help)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown target '$1' (expected aarch64, armv7 or all)" ;;
esac
[ $# -le 1 ] || die "one argument at most (aarch64, armv7 or all)"

# Per arch: Rust triple, GNU triple (compiler prefix), Debian packages providing the toolchain.
triple_of() { case $1 in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;; esac; }
gnu_of() { case $1 in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; esac; }
pkgs_of() {
  case $1 in
    aarch64) echo gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu ;;
    armv7) echo gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf ;;
  esac
}

install_toolchain() { # arch
  local gnu missing=() p
  gnu=$(gnu_of "$1")
  for p in $(pkgs_of "$1"); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install a $gnu cross compiler by hand"
    log "installing ${missing[*]}"
    # Refresh the package lists only when a plain install fails (stale or empty lists).
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
      die "apt-get install ${missing[*]} failed"
  fi
  command -v "$gnu-gcc" >/dev/null || die "$gnu-gcc not found after installing $(pkgs_of "$1")"
}

install_rust_target() { # triple
  command -v rustup >/dev/null || die "rustup not found (install Rust with rustup: https://rustup.rs)"
  if ! rustup target list --installed | grep -qx "$1"; then
    log "adding the Rust target $1"
    rustup target add "$1" >/dev/null
  fi
}

env_key() { echo "$1" | tr 'a-z-' 'A-Z_'; } # aarch64-unknown-linux-gnu -> AARCH64_UNKNOWN_LINUX_GNU

build() { # arch
  local arch=$1 triple gnu key locked=(--locked)
  triple=$(triple_of "$arch")
  gnu=$(gnu_of "$arch")
  key=$(env_key "$triple")
  [ "${NIMBUS_CROSS_LOCKED:-1}" = 0 ] && locked=()
  install_toolchain "$arch"
  install_rust_target "$triple"

  log "building nimbus-edge (release, features $FEATURES) for $triple into $CARGO_TARGET_DIR"
  local start=$SECONDS
  # Linker for Rust; C compiler/archiver for build scripts (rusqlite's bundled SQLite via cc-rs).
  env "CARGO_TARGET_${key}_LINKER=$gnu-gcc" \
    "CC_${triple//-/_}=$gnu-gcc" \
    "AR_${triple//-/_}=$gnu-ar" \
    cargo build "${locked[@]}" --release -p nimbus-edge --features "$FEATURES" --target "$triple"
  log "built $triple in $((SECONDS - start)) s"

  local bin=$CARGO_TARGET_DIR/$triple/release/nimbus-edge
  [ -x "$bin" ] || die "expected binary not found: $bin"
  report "$bin" "$gnu" "$triple"
}

report() { # binary, gnu prefix, triple
  local bin=$1 gnu=$2 triple=$3 size stripped glibc
  size=$(stat -c %s "$bin")
  # The release profile strips; check rather than trust it (a stripped ELF has no .symtab).
  if "$gnu-readelf" -S -W "$bin" | grep -q '\.symtab'; then stripped="NOT stripped"; else stripped="stripped"; fi
  # Oldest glibc the board must have: the highest GLIBC_x.y symbol version the binary references.
  glibc=$("$gnu-objdump" -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n1 || true)
  printf '%s\n' \
    "nimbus-edge $triple: $bin" \
    "  size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'), $stripped)" \
    "  needs: ${glibc:-no versioned glibc symbols} or newer on the board"
  if [ "$size" -ge $((15 * 1024 * 1024)) ]; then
    log "WARNING: $triple binary is over the 15 MiB budget"
  fi
}

for arch in "${ARCHES[@]}"; do
  build "$arch"
done
