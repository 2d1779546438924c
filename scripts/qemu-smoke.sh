#!/usr/bin/env bash
# Smoke-tests a cross-built nimbus-edge under qemu-user on an x86_64 machine (CI, or a laptop before
# flashing boards):
#
#   scripts/qemu-smoke.sh target/aarch64-unknown-linux-gnu/release/nimbus-edge
#
# (An armv7 binary works too: qemu-arm and /usr/arm-linux-gnueabihf are used instead.)
# Starts the binary with --simulate in a temporary directory on free loopback ports (cloud sync
# off), waits for its ready line, taps FACA0001, 5A000001, 5A000001, DEADBEEF on the simulated
# reader (expects accepted, accepted, duplicate, unknown_card), checks GET /health and
# /health/ready, measures idle memory, then sends SIGTERM and expects a clean exit (status 0).
# Exits non-zero with a message naming the failed step; logs are printed on failure.
#
# Memory: the resident set of the qemu-user process is the emulator *plus* the guest (QEMU's own
# code and heap, its translated-code cache, and every page the guest program touched), so it is
# an upper bound for the same binary on a Pi. The script also reports the guest's share: the
# resident pages inside the address ranges QEMU says belong to the guest (`-d page` log), which
# approximates the program's RSS on real hardware with 4 KiB pages.
#
# Installs (Debian, if missing) qemu-user-static and the target's libc (libc6-arm64-cross or
# libc6-armhf-cross). Environment: SMOKE_READY_TIMEOUT (s, default 180), SMOKE_IDLE_SECS (default
# 5), SMOKE_MAX_RSS_MB (fail if idle RSS is above this, default 40: the guest's share, or the whole
# qemu process when the share cannot be measured), SMOKE_SYSROOT (default /usr/aarch64-linux-gnu
# or /usr/arm-linux-gnueabihf), SMOKE_KEEP=1 keeps the temporary directory.
set -euo pipefail

READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-180}
IDLE_SECS=${SMOKE_IDLE_SECS:-5}
MAX_RSS_MB=${SMOKE_MAX_RSS_MB:-40}

log() { printf '[qemu-smoke] %s\n' "$*" >&2; }

TMP=""
PID=""
fail() {
  printf '[qemu-smoke] FAIL: %s\n' "$*" >&2
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    for f in stdout stderr; do
      if [ -s "$TMP/$f" ]; then
        printf '[qemu-smoke] --- node %s (last 40 lines) ---\n' "$f" >&2
        tail -n 40 "$TMP/$f" >&2
      fi
    done
  fi
  exit 1
}

cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
}
trap cleanup EXIT

[ $# -eq 1 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BIN=$(readlink -f "$1") || fail "no such file: $1"
[ -f "$BIN" ] || fail "no such file: $1"

# An ELF executable for aarch64 or 32-bit ARM: magic, then e_machine (offset 18, little-endian).
[ "$(head -c 4 "$BIN" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "$BIN is not an ELF file"
machine=$(od -An -tu2 -j18 -N2 "$BIN" | tr -d ' ')
case $machine in
  183) QEMU_NAME=qemu-aarch64 DEFAULT_SYSROOT=/usr/aarch64-linux-gnu LOADER=ld-linux-aarch64.so.1 LIBC_PKG=libc6-arm64-cross ;;
  40) QEMU_NAME=qemu-arm DEFAULT_SYSROOT=/usr/arm-linux-gnueabihf LOADER=ld-linux-armhf.so.3 LIBC_PKG=libc6-armhf-cross ;;
  *) fail "$BIN is neither an aarch64 nor an ARM binary (ELF e_machine $machine; expected 183 or 40)" ;;
esac
SYSROOT=${SMOKE_SYSROOT:-$DEFAULT_SYSROOT}

# --- tools --------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  command -v apt-get >/dev/null || fail "missing $*; install it by hand (no apt-get)"
  log "installing $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "$@" >/dev/null; } ||
    fail "apt-get install $* failed"
}
find_qemu() { command -v "$QEMU_NAME" || command -v "$QEMU_NAME-static" || true; }
QEMU=$(find_qemu)
if [ -z "$QEMU" ]; then
  apt_install qemu-user-static
  QEMU=$(find_qemu)
  [ -n "$QEMU" ] || fail "qemu-user-static installed but neither $QEMU_NAME nor $QEMU_NAME-static is on PATH"
fi
if [ ! -e "$SYSROOT/lib/$LOADER" ]; then
  [ "$SYSROOT" = "$DEFAULT_SYSROOT" ] || fail "no $LOADER in SMOKE_SYSROOT=$SYSROOT"
  apt_install "$LIBC_PKG"
fi
QEMU_VERSION=$("$QEMU" --version | head -n1)
log "binary: $BIN ($(stat -c %s "$BIN") bytes)"
log "emulator: $QEMU ($QEMU_VERSION), sysroot $SYSROOT"

# --- start --------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-qemu-smoke.XXXXXX")
mkdir "$TMP/data"
cat >"$TMP/smoke.toml" <<EOF
# Written by scripts/qemu-smoke.sh: free loopback ports, no cloud.
node_id = "qemu-smoke"
room_id = "demo-101"
data_dir = "$TMP/data"
log = "info"

[http]
bind = "127.0.0.1:0"

[reader]
kind = "simulated"
simulated_bind = "127.0.0.1:0"

[cloud]
enabled = false
EOF

started=$SECONDS
# The environment overrides the file: clear every override so CI's MQTT_URL etc. cannot leak in.
# `exec` keeps the subshell's PID, so $! is the qemu process itself (qemu-user runs the guest
# in-process, guest threads are its threads).
(
  cd "$TMP"
  exec env -u NIMBUS_NODE_ID -u NIMBUS_ROOM_ID -u NIMBUS_DATA_DIR -u NIMBUS_HTTP_BIND \
    -u NIMBUS_READER_KIND -u NIMBUS_SIMULATED_BIND -u MQTT_URL -u NIMBUS_MQTT_PASSWORD \
    -u NIMBUS_EDGE_CONFIG -u RUST_LOG NO_COLOR=1 \
    "$QEMU" -L "$SYSROOT" -d page -D "$TMP/qemu-page.log" \
    "$BIN" --config "$TMP/smoke.toml" --simulate >"$TMP/stdout" 2>"$TMP/stderr"
) &
PID=$!
log "started pid $PID; waiting up to ${READY_TIMEOUT}s for the ready line"

READY=""
while [ $((SECONDS - started)) -lt "$READY_TIMEOUT" ]; do
  READY=$(grep -m1 '^nimbus-edge ready ' "$TMP/stdout" 2>/dev/null || true)
  [ -n "$READY" ] && break
  if ! kill -0 "$PID" 2>/dev/null; then
    rc=0
    wait "$PID" || rc=$?
    PID=""
    fail "the node exited (status $rc) before it was ready"
  fi
  sleep 0.2
done
[ -n "$READY" ] || fail "no ready line within ${READY_TIMEOUT}s"
READY_SECS=$((SECONDS - started))
HTTP_ADDR=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$READY")
READER_ADDR=$(sed -n 's/.* reader=\([^ ]*\).*/\1/p' <<<"$READY")
[[ $HTTP_ADDR =~ ^[0-9.]+:[0-9]+$ ]] || fail "cannot parse http=ADDR from: $READY"
[[ $READER_ADDR =~ ^[0-9.]+:[0-9]+$ ]] || fail "cannot parse reader=ADDR from: $READY (is the reader simulated?)"
log "ready after ${READY_SECS}s: $READY"

# --- taps ---------------------------------------------------------------------------------------
# The simulated reader's protocol: one UID per line, one verdict line back per tap.
TAPS=(FACA0001 5A000001 5A000001 DEADBEEF)
EXPECT=(accepted accepted duplicate unknown_card)
exec 3<>"/dev/tcp/${READER_ADDR%:*}/${READER_ADDR##*:}" || fail "cannot connect to the reader socket $READER_ADDR"
TAP_SUMMARY=""
for i in "${!TAPS[@]}"; do
  printf '%s\n' "${TAPS[$i]}" >&3 || fail "cannot write tap ${TAPS[$i]}"
  reply=""
  IFS= read -r -t 30 reply <&3 || fail "no reply to tap ${TAPS[$i]} within 30s"
  reply=${reply%$'\r'}
  [ "$reply" = "${EXPECT[$i]}" ] || fail "tap ${TAPS[$i]}: got '$reply', expected '${EXPECT[$i]}'"
  TAP_SUMMARY+="${TAPS[$i]}=$reply "
done
exec 3>&-
TAP_SUMMARY=${TAP_SUMMARY% }
log "taps: $TAP_SUMMARY"

# --- HTTP ---------------------------------------------------------------------------------------
http_get() { # path -> prints "STATUS BODY" (body on one line)
  local response="" line
  exec 4<>"/dev/tcp/${HTTP_ADDR%:*}/${HTTP_ADDR##*:}" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$HTTP_ADDR" >&4
  while IFS= read -r -t 30 line <&4 || [ -n "$line" ]; do
    response+="${line%$'\r'}"$'\n'
  done
  exec 4>&-
  local status body
  status=$(head -n1 <<<"$response" | awk '{print $2}')
  body=$(awk 'body { printf "%s", $0 } /^$/ { body = 1 }' <<<"$response")
  printf '%s %s\n' "$status" "$body"
}
health=$(http_get /health) || fail "cannot connect to the LAN server $HTTP_ADDR"
[ "${health%% *}" = 200 ] || fail "GET /health: expected 200, got: $health"
[[ ${health#* } == *'"status":"ok"'* ]] || fail "GET /health: unexpected body: ${health#* }"
ready=$(http_get /health/ready) || fail "cannot connect to the LAN server $HTTP_ADDR"
[ "${ready%% *}" = 200 ] || fail "GET /health/ready: expected 200, got: $ready"
log "GET /health: $health; GET /health/ready: ${ready%% *}"

# --- idle memory --------------------------------------------------------------------------------
sleep "$IDLE_SECS"
kill -0 "$PID" 2>/dev/null || fail "the node died while idle"
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
RSS_KB=$(status_kb VmRSS)
HWM_KB=$(status_kb VmHWM)
THREADS=$(status_kb Threads)

# Guest share: sum the Rss of the host mappings (smaps) that fall inside the guest's address ranges
# (QEMU's last page dump, guest address + guest_base = host address). The dump follows mmap, not
# munmap, so ranges the guest has since unmapped may still be listed; the host kernel then has
# nothing resident there (or QEMU's PROT_NONE reservation), so they add (almost) nothing.
guest_rss_kb() {
  local log=$TMP/qemu-page.log base ranges
  [ -s "$log" ] || return 1
  # QEMU 7.2: "Locating guest address space @ 0x…"; later: "guest_base  0x…" ("(nil)" for 0).
  base=$(awk '$1 == "guest_base" { v = $2 } /^Locating guest address space @ / { v = $NF }
              END { print v }' "$log")
  case $base in
    "(nil)" | 0) base=0 ;;
    0x[0-9a-fA-F]*) base=$((base)) ;;
    *) return 1 ;;
  esac
  # The last "start-end size prot" table in the log.
  ranges=$(awk '/^start +end +size +prot/ { n = 0; delete r; next }
                /^[0-9a-f]+-[0-9a-f]+ [0-9a-f]+ [-r][-w][-x]$/ { split($1, a, "-"); r[n++] = a[1] " " a[2] }
                END { for (i = 0; i < n; i++) print r[i] }' "$log")
  [ -n "$ranges" ] || return 1
  local -a gs=() ge=()
  local s e b=$base i total=0 hs he rss=0 inside=0
  while read -r s e; do gs+=($((16#$s + b))); ge+=($((16#$e + b))); done <<<"$ranges"
  # smaps: a header line per mapping, then "Rss: N kB". Pro-rate a mapping only partly inside.
  while read -r hs he rss; do
    inside=0
    for i in "${!gs[@]}"; do
      local lo=$((hs > gs[i] ? hs : gs[i])) hi=$((he < ge[i] ? he : ge[i]))
      [ "$hi" -gt "$lo" ] && inside=$((inside + hi - lo))
    done
    [ "$inside" -gt 0 ] && total=$((total + rss * inside / (he - hs)))
  done < <(awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); s = a[1]; e = a[2] }
                $1 == "Rss:" { print s, e, $2 }' "/proc/$PID/smaps" |
    while read -r s e r; do echo "$((16#$s)) $((16#$e)) $r"; done)
  echo "$total"
}
GUEST_KB=$(guest_rss_kb || true)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
log "idle RSS after ${IDLE_SECS}s: qemu process VmRSS $(mib "$RSS_KB") (peak VmHWM $(mib "$HWM_KB"), $THREADS threads)"
if [ -n "$GUEST_KB" ]; then
  log "idle RSS, guest pages only: $(mib "$GUEST_KB") (emulator and translated code: $(mib $((RSS_KB - GUEST_KB))))"
fi

# --- stop ---------------------------------------------------------------------------------------
stop_started=$SECONDS
kill -TERM "$PID"
for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then fail "still running 30s after SIGTERM"; fi
rc=0
wait "$PID" || rc=$?
PID=""
STOP_SECS=$((SECONDS - stop_started))
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM (expected 0)"
if grep -qE ' ERROR |panicked' "$TMP/stderr"; then
  fail "the node logged errors: $(grep -E ' ERROR |panicked' "$TMP/stderr" | head -n3)"
fi
[ -s "$TMP/data/node.db" ] || fail "no database at $TMP/data/node.db"

GUEST_LINE="n/a (no usable qemu page log)"
if [ -n "$GUEST_KB" ]; then GUEST_LINE="$(mib "$GUEST_KB") resident in the guest's own mappings"; fi
# The budget applies to the guest's share when it could be measured (what a Pi would see), else to
# the whole qemu process (an upper bound).
BUDGET_KB=${GUEST_KB:-$RSS_KB}
over=""
if [ "$BUDGET_KB" -gt $((MAX_RSS_MB * 1024)) ]; then over=" (over SMOKE_MAX_RSS_MB=$MAX_RSS_MB)"; fi
cat <<EOF
qemu-smoke: $BIN
  emulator:        $QEMU_VERSION
  ready after:     ${READY_SECS}s (under emulation): $READY
  taps:            $TAP_SUMMARY
  GET /health:     $health
  GET /health/ready: ${ready%% *}
  idle RSS:        $(mib "$RSS_KB") qemu process VmRSS (emulator + guest; peak $(mib "$HWM_KB"))
  guest share:     $GUEST_LINE
  budget:          $(mib "$BUDGET_KB") against SMOKE_MAX_RSS_MB=$MAX_RSS_MB$over
  SIGTERM:         exit 0 after ${STOP_SECS}s
EOF
[ -z "$over" ] || fail "idle RSS $(mib "$BUDGET_KB") is over the ${MAX_RSS_MB} MiB budget"
echo "qemu-smoke: PASS"
