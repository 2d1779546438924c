#!/usr/bin/env bash
# Installs (if missing) and starts the real services NimbusU Edge's tests talk to, on loopback,
# then waits until each one answers; installs Chromium and ChromeDriver for the pages' browser tests.
# Idempotent: services already running are left alone.
#
#   scripts/services.sh up      install what is missing, start what is down, create databases
#   scripts/services.sh check   only probe; exit 1 if any service does not answer
#   scripts/services.sh env     print the environment variables tests read (eval-able)
#
# Debian only (apt-get). Installs need root (or sudo). Slow installs are cached across runs:
# tansu in ~/.cargo/bin, the MongoDB-wire server's venv under $NIMBUS_SERVICES_DIR.
set -euo pipefail

STATE_DIR=${NIMBUS_SERVICES_DIR:-$HOME/.local/share/nimbus-services}
TANSU_VERSION=0.6.0
SECANTUS_VERSION=0.7.0b3
AIOSMTPD_VERSION=1.4.6
K8S_VALIDATE_VERSION=1.37.0
SCHEMATHESIS_VERSION=4.32.5
PG_PORT=5432
REDIS_PORT=6379
MQTT_PORT=1883
KAFKA_PORT=9092
# The tests' own broker (NIMBUS_TEST_KAFKA_BROKERS): a developer's stack on $KAFKA_PORT
# (`nimbus-cloud all` with its defaults) never reads the tests' attendance, alerts or dead letters.
KAFKA_TEST_PORT=9094
MONGO_PORT=27017

# Every per-service database of the seed, plus the cloud's edge-node registry.
DATABASES=(
  user_service_db content_service_db notification_service_db course_service_db
  timetable_service_db attendance_service_db announcement_service_db
  communication_service_db analytics_service_db edge_registry_db
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, timeout seconds, probe command...
  local name=$1 timeout=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= timeout )); then die "$name did not answer within ${timeout}s"; fi
    sleep 0.5
  done
  log "$name is up"
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Build prerequisites -----------------------------------------------------------------------
# librdkafka (built from source by rdkafka's cmake-build) finds libcurl's CMake package on some
# images without its headers and then fails on curl/curl.h; its headers make the build
# deterministic. cmake itself builds librdkafka and tansu.
build_deps_up() {
  local missing=()
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  command -v cmake >/dev/null || missing+=(cmake)
  if [ "${#missing[@]}" -gt 0 ]; then log "installing build prerequisites: ${missing[*]}"; apt_install "${missing[@]}"; fi
}

# --- PostgreSQL -------------------------------------------------------------------------------
pg_tcp_ok() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' 2>/dev/null | grep -q 1; }

postgres_up() {
  if ! pg_tcp_ok; then
    if ! command -v pg_ctlcluster >/dev/null; then log "installing PostgreSQL"; apt_install postgresql; fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    [ -n "$version" ] || die "no PostgreSQL cluster found under /etc/postgresql"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    wait_for "PostgreSQL socket" 30 pg_isready -q
    if ! pg_tcp_ok; then
      # A fresh Debian cluster wants passwords over TCP; this is a loopback-only dev/CI server.
      log "allowing trust auth on loopback for this development cluster"
      local hba="/etc/postgresql/$version/main/pg_hba.conf"
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
  fi
  wait_for "PostgreSQL" 30 pg_tcp_ok
  for db in "${DATABASES[@]}"; do
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $db" >/dev/null
      log "created database $db"
    fi
  done
}

# --- Redis -------------------------------------------------------------------------------------
redis_ok() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

redis_up() {
  if ! redis_ok; then
    command -v redis-server >/dev/null || { log "installing Redis"; apt_install redis-server; }
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /tmp --logfile "$STATE_DIR/redis.log"
  fi
  wait_for "Redis" 20 redis_ok
}

# --- Mosquitto ---------------------------------------------------------------------------------
mqtt_ok() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t nimbus/probe -m ok -q 1; }

mosquitto_up() {
  if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
    log "installing Mosquitto"; apt_install mosquitto mosquitto-clients
  fi
  if ! port_open "$MQTT_PORT"; then
    if [ -f /etc/mosquitto/mosquitto.conf ]; then
      $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
    else
      printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT" > "$STATE_DIR/mosquitto.conf"
      mosquitto -d -c "$STATE_DIR/mosquitto.conf"
    fi
  fi
  wait_for "Mosquitto" 20 mqtt_ok
}

# --- Kafka protocol (tansu): one broker for whatever runs here, one for the tests -------------
kafka_ok() { python3 "$(dirname "$0")/kafka_probe.py" 127.0.0.1 "${1:-$KAFKA_PORT}"; }

tansu_start() { # port, state name (directory, .log and .pid under $STATE_DIR)
  local port=$1 dir="$STATE_DIR/$2"
  if ! port_open "$port"; then
    mkdir -p "$dir"
    # tansu reads a .env file from its working directory and these variables from the
    # environment; start it from a clean directory with everything explicit. The sqlite path is
    # relative to that directory.
    (
      cd "$dir"
      env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE -u SCHEMA_REGISTRY \
        nohup tansu broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db" \
        > "$dir.log" 2>&1 < /dev/null &
      echo $! > "$dir.pid"
    )
  fi
}

kafka_up() {
  if ! kafka_ok "$KAFKA_PORT" || ! kafka_ok "$KAFKA_TEST_PORT"; then
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v tansu >/dev/null || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
      log "building tansu $TANSU_VERSION (about 15 minutes on 2 cores; cached in ~/.cargo/bin)"
      command -v cmake >/dev/null || apt_install cmake
      cargo install tansu --version "$TANSU_VERSION" --locked --features libsql
    fi
    tansu_start "$KAFKA_PORT" tansu
    tansu_start "$KAFKA_TEST_PORT" tansu-tests
  fi
  wait_for "Kafka (tansu)" 60 kafka_ok "$KAFKA_PORT"
  wait_for "Kafka for the tests (tansu, 127.0.0.1:$KAFKA_TEST_PORT)" 60 kafka_ok "$KAFKA_TEST_PORT"
}

# --- MongoDB wire protocol (SecantusDB) --------------------------------------------------------
mongo_up() {
  if ! port_open "$MONGO_PORT"; then
    local venv="$STATE_DIR/secantus-venv"
    if [ ! -x "$venv/bin/secantusd-py" ]; then
      log "installing SecantusDB $SECANTUS_VERSION (MongoDB wire-compatible) into $venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q "SecantusDB==$SECANTUS_VERSION"
    fi
    # The oplog keeps a copy of every write for an hour by default; tests upload tens of MB of
    # GridFS chunks per run and nothing here tails the oplog, so keep it short, and give the
    # in-memory store room (repeated runs within an hour filled the 1G default: WT_CACHE_FULL).
    nohup "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory: \
      --cache-size 3G --oplog-retention-seconds 60 --oplog-max-entries 5000 \
      > "$STATE_DIR/secantus.log" 2>&1 < /dev/null &
    echo $! > "$STATE_DIR/secantus.pid"
  fi
  wait_for "MongoDB wire server" 60 port_open "$MONGO_PORT"
}

# --- SMTP (aiosmtpd) for the notification service's tests ------------------------------------------
# Not a daemon: each test starts its own server (scripts/smtp_sink.py) on its own port and reads
# the messages it stored, so tests never see each other's mail and can stop the server at will.
SMTP_VENV="$STATE_DIR/smtp-venv"
smtp_ok() { "$SMTP_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; }

smtp_up() {
  if ! smtp_ok; then
    log "installing aiosmtpd $AIOSMTPD_VERSION (the tests' SMTP server) into $SMTP_VENV"
    python3 -m venv "$SMTP_VENV"
    "$SMTP_VENV/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
  fi
  smtp_ok || die "aiosmtpd is missing after the install"
}

# --- Kubernetes schemas for the manifests' test (k8s_manifests) ---------------------------------
# kubernetes-validate checks deploy/k8s's rendered overlays against a Kubernetes version's
# OpenAPI schemas, offline (the schemas ship in the wheel). Cached in its venv.
K8S_VENV="$STATE_DIR/k8s-validate-venv"
k8s_validate_ok() { "$K8S_VENV/bin/kubernetes-validate" --version >/dev/null 2>&1; }

k8s_validate_up() {
  if ! k8s_validate_ok; then
    log "installing kubernetes-validate $K8S_VALIDATE_VERSION (the manifests' schema check) into $K8S_VENV"
    python3 -m venv "$K8S_VENV"
    "$K8S_VENV/bin/pip" install -q "kubernetes-validate==$K8S_VALIDATE_VERSION"
  fi
  k8s_validate_ok || die "kubernetes-validate is missing after the install"
}

# --- Schemathesis for the API contract test (api_contract) ---------------------------------------
# A property-based run over every operation of /openapi.json: requests the document allows must
# be accepted, requests it forbids refused, every answer documented. Cached in its venv.
ST_VENV="$STATE_DIR/schemathesis-venv"
schemathesis_ok() { "$ST_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; }

schemathesis_up() {
  if ! schemathesis_ok; then
    log "installing schemathesis $SCHEMATHESIS_VERSION (the API contract test) into $ST_VENV"
    python3 -m venv "$ST_VENV"
    "$ST_VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  schemathesis_ok || die "schemathesis is missing after the install"
}

# --- Browser for the pages' tests (Debian's Chromium and ChromeDriver) ------------------------------
AXE_VERSION=4.14.1
AXE_JS="$STATE_DIR/axe/node_modules/axe-core/axe.min.js"
browser_ok() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -f "$AXE_JS" ]; }

browser_up() {
  if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    log "installing Chromium and ChromeDriver (the pages' browser tests)"
    apt_install chromium chromium-driver
  fi
  if ! [ -f "$AXE_JS" ]; then
    # axe-core: the accessibility rules the browser tests run in the page.
    log "installing axe-core $AXE_VERSION into $STATE_DIR/axe"
    command -v npm >/dev/null || apt_install npm
    mkdir -p "$STATE_DIR/axe"
    (cd "$STATE_DIR/axe" && npm install --silent --no-audit --no-fund "axe-core@$AXE_VERSION" >/dev/null)
  fi
  browser_ok || die "Chromium or ChromeDriver is missing after the install"
  log "Chromium $(/usr/bin/chromedriver --version 2>/dev/null | awk '{print $2}') is ready"
}

print_env() {
  cat <<EOF
export DATABASE_URL=\${DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT}
export REDIS_URL=\${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export MQTT_URL=\${MQTT_URL:-mqtt://127.0.0.1:$MQTT_PORT}
export KAFKA_BROKERS=\${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}
export NIMBUS_TEST_KAFKA_BROKERS=\${NIMBUS_TEST_KAFKA_BROKERS:-127.0.0.1:$KAFKA_TEST_PORT}
export MONGODB_URI=\${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true}
export NIMBUS_AXE_JS=\${NIMBUS_AXE_JS:-$AXE_JS}
export NIMBUS_SMTP_PYTHON=\${NIMBUS_SMTP_PYTHON:-$SMTP_VENV/bin/python}
export NIMBUS_K8S_VALIDATE=\${NIMBUS_K8S_VALIDATE:-$K8S_VENV/bin/kubernetes-validate}
export NIMBUS_SCHEMATHESIS=\${NIMBUS_SCHEMATHESIS:-$ST_VENV/bin/st}
EOF
}

check_all() {
  local failed=0
  pg_tcp_ok || { log "PostgreSQL is not answering on 127.0.0.1:$PG_PORT"; failed=1; }
  redis_ok || { log "Redis is not answering on 127.0.0.1:$REDIS_PORT"; failed=1; }
  mqtt_ok 2>/dev/null || { log "Mosquitto is not answering on 127.0.0.1:$MQTT_PORT"; failed=1; }
  kafka_ok "$KAFKA_PORT" || { log "Kafka is not answering on 127.0.0.1:$KAFKA_PORT"; failed=1; }
  kafka_ok "$KAFKA_TEST_PORT" || { log "the tests' Kafka is not answering on 127.0.0.1:$KAFKA_TEST_PORT"; failed=1; }
  port_open "$MONGO_PORT" || { log "MongoDB is not answering on 127.0.0.1:$MONGO_PORT"; failed=1; }
  browser_ok || { log "Chromium/ChromeDriver or axe-core are not installed"; failed=1; }
  smtp_ok || { log "aiosmtpd (the tests' SMTP server) is not installed"; failed=1; }
  k8s_validate_ok || { log "kubernetes-validate (the manifests' schema check) is not installed"; failed=1; }
  schemathesis_ok || { log "schemathesis (the API contract test) is not installed"; failed=1; }
  return $failed
}

mkdir -p "$STATE_DIR"
case "${1:-up}" in
  up)
    build_deps_up
    postgres_up
    redis_up
    mosquitto_up
    kafka_up
    mongo_up
    smtp_up
    k8s_validate_up
    schemathesis_up
    browser_up
    log "all services are up"
    ;;
  check) check_all && log "all services answer" ;;
  env) print_env ;;
  *) die "usage: $0 [up|check|env]" ;;
esac
