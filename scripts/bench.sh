#!/usr/bin/env bash
# Ember and Apache Spark Streaming side by side: `scripts/bench.sh [quick|full|noisy]`.
# Builds ember-bench, installs the Spark peer if missing (pyspark in a venv outside the repo,
# ~450 MB, and the peer program compiled with javac), runs every workload on both and writes
# crates/ember-bench/results/<date>.md. `quick` takes under 10 minutes. `noisy` compares CPU per
# record at one fixed rate in repeated, alternating runs, with the spread: usable on a busy machine.
# `sql` compares the SQL word count (ember-sql) with the typed one and with Spark's per-batch SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case "$mode" in quick|full|noisy|sql) ;; *) echo "usage: scripts/bench.sh [quick|full|noisy|sql]" >&2; exit 2 ;; esac
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/ember-peers}
export PEERS_DIR

cargo build --release -q -p ember-bench

if [ ! -x "$PEERS_DIR/venv/bin/python" ] || ! "$PEERS_DIR/venv/bin/python" -c 'import pyspark' 2>/dev/null; then
  echo "[bench] installing pyspark into $PEERS_DIR/venv" >&2
  mkdir -p "$PEERS_DIR"
  python3 -m venv "$PEERS_DIR/venv"
  "$PEERS_DIR/venv/bin/pip" install -q --disable-pip-version-check pyspark
fi
command -v javac >/dev/null || { echo "javac (Java 17) is needed for the Spark peer: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
jars=$("$PEERS_DIR/venv/bin/python" -c 'import os,pyspark;print(os.path.join(os.path.dirname(pyspark.__file__),"jars"))')
src=crates/ember-bench/spark/SparkPeer.java
if [ ! -f "$PEERS_DIR/classes/SparkPeer.class" ] || [ "$src" -nt "$PEERS_DIR/classes/SparkPeer.class" ]; then
  mkdir -p "$PEERS_DIR/classes"
  javac -nowarn -d "$PEERS_DIR/classes" -cp "$jars/*" "$src"
fi
exec python3 scripts/bench.py "$mode"
