#!/usr/bin/env bash
# Packages a release of the classroom daemon for one board type:
#
#   scripts/package-edge.sh <aarch64|armv7|TRIPLE> [--binary PATH]
#
# Builds the binary with scripts/cross-build.sh (a no-op when it is up to date), or takes the one
# given with --binary, and writes
#
#   dist/nimbus-edge-<version>-<triple>.tar.gz          (and .sha256 next to it)
#
# holding one directory: nimbus-edge, install.sh, INSTALL.txt, TARGET, SHA256SUMS,
# systemd/{nimbus-edge.service, nimbus-edge-health.service, nimbus-edge-health.timer,
# }, config/{nimbus-edge.toml, env.example, journald-nimbus-edge.conf}.
#
# Then it checks the tarball as installed: unpacks it, runs its install.sh into a scratch root
# (DESTDIR) and runs `systemd-analyze verify --root=<scratch>` on the units; any warning fails the
# package. Installs Debian's systemd package if
# systemd-analyze is missing (it works without systemd running as PID 1).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}

log() { printf '[package-edge] %s\n' "$*" >&2; }
die() { printf '[package-edge] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in
  aarch64 | aarch64-unknown-linux-gnu) ARCH=aarch64 TRIPLE=aarch64-unknown-linux-gnu ;;
  armv7 | armv7-unknown-linux-gnueabihf) ARCH=armv7 TRIPLE=armv7-unknown-linux-gnueabihf ;;
  *) die "unknown target '$1' (aarch64, armv7 or their triples)" ;;
esac
shift
BIN=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -ge 2 ] || usage; BIN=$(readlink -f "$2"); shift 2 ;;
    *) usage ;;
  esac
done

if [ -z "$BIN" ]; then
  scripts/cross-build.sh "$ARCH" >&2
  BIN=$CARGO_TARGET_DIR/$TRIPLE/release/nimbus-edge
fi
[ -x "$BIN" ] || die "no binary at $BIN"
# e_machine of the ELF header: 183 AArch64, 40 ARM.
want=$([ "$ARCH" = aarch64 ] && echo 183 || echo 40)
[ "$(od -An -tu2 -j18 -N2 "$BIN" | tr -d ' ')" = "$want" ] || die "$BIN is not a $TRIPLE binary"

VERSION=$(cargo metadata --no-deps --format-version 1 --offline |
  grep -o '"name":"nimbus-edge","version":"[^"]*"' | sed 's/.*"version":"\([^"]*\)"/\1/')
[ -n "$VERSION" ] || die "cannot read nimbus-edge's version from cargo metadata"
NAME=nimbus-edge-$VERSION-$TRIPLE
DEPLOY=edge-node/deploy

# --- assemble -----------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/$NAME
mkdir -p "$PKG/systemd" "$PKG/config"
install -m 0755 "$BIN" "$PKG/nimbus-edge"
install -m 0755 "$DEPLOY/install.sh" "$PKG/install.sh"
install -m 0644 "$DEPLOY/INSTALL.txt" "$PKG/INSTALL.txt"
for f in nimbus-edge.service nimbus-edge-health.service nimbus-edge-health.timer; do
  install -m 0644 "$DEPLOY/$f" "$PKG/systemd/$f"
done
for f in nimbus-edge.toml env.example journald-nimbus-edge.conf; do
  install -m 0644 "$DEPLOY/$f" "$PKG/config/$f"
done
echo "$TRIPLE" >"$PKG/TARGET"
(cd "$PKG" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >"$WORK/SHA256SUMS")
mv "$WORK/SHA256SUMS" "$PKG/SHA256SUMS"

mkdir -p dist
OUT=dist/$NAME.tar.gz
# Reproducible: sorted names, fixed owner, one timestamp (SOURCE_DATE_EPOCH or the binary's), no
# gzip name/time header.
MTIME=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$BIN")}
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" -cf - "$NAME" |
  gzip -9n >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
(cd dist && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")

# --- verify as installed ------------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
  command -v apt-get >/dev/null || die "systemd-analyze missing and no apt-get to install it"
  log "installing systemd (for systemd-analyze)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends systemd >/dev/null; } || die "cannot install systemd"
fi

mkdir "$WORK/check"
tar -C "$WORK/check" -xzf "$OUT"
(cd "$WORK/check/$NAME" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS do not match the files"

verify_root() { # name, extra setup command...
  local root=$WORK/root-$1 out
  shift
  DESTDIR=$root "$WORK/check/$NAME/install.sh" >/dev/null
  # The units' default dependencies (sysinit.target, …) come from the build machine's systemd.
  mkdir -p "$root/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  # Commands the units run that the board has but the scratch root does not: executable stand-ins
  # (verify checks that each Exec*= path is an executable file, not what it does).
  for cmd in /bin/sh /bin/systemctl /usr/bin/systemctl; do
    [ -e "$root$cmd" ] || install -D -m 0755 /dev/null "$root$cmd"
  done
  "$@"
  # verify exits 0 on unknown keys and unparsable values (it only logs them), so any output fails.
  out=$(cd "$root" && systemd-analyze verify --man=no --root="$root" \
    nimbus-edge.service nimbus-edge-health.service nimbus-edge-health.timer 2>&1) ||
    die "systemd-analyze verify failed:"$'\n'"$out"
  [ -z "$out" ] || die "systemd-analyze verify reported:"$'\n'"$out"
}
verify_root plain true
log "systemd-analyze verify: nimbus-edge.service, nimbus-edge-health.{service,timer}: OK"
EXPOSURE=$(systemd-analyze security --offline=true --root="$WORK/root-plain" nimbus-edge.service 2>/dev/null |
  grep -o 'Overall exposure level.*' || echo "n/a")
log "systemd-analyze security nimbus-edge.service: $EXPOSURE"

SIZE=$(stat -c %s "$OUT")
printf '%s\n' "$OUT ($SIZE bytes, binary $(stat -c %s "$BIN") bytes)" "  sha256 $(cut -d' ' -f1 "$OUT.sha256")"
tar -tzvf "$OUT" | awk '{ print "  " $1, $3, $6 }'
