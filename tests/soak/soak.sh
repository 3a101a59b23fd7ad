#!/usr/bin/env bash
# Exactly once under chaos, every stream at once (not part of `make test`: ~3 minutes).
#
# A clean `run --once` of every stream into one schema; then the service (`run`) started and
# SIGKILLed or SIGTERMed KILLS times at random instants into another, against a simulator that
# fails 5 % of requests and corrupts every 40th z-report; then `run --once` twice more on both,
# and every table compared (tests/soak/compare.py). Exit 0 when all tables are the same.
#
#   tests/soak/soak.sh postgresql://postgres@127.0.0.1:5432/test postgres [KILLS] [PORT]
#   tests/soak/soak.sh mysql://root@127.0.0.1:3306/test mysql
set -u
URL=$1; KIND=$2; KILLS=${3:-40}; PORT=${4:-18880}
ROOT=$(cd "$(dirname "$0")/../.." && pwd); BIN=$ROOT/.venv/bin
TAG=soak_$$; WORK=$(mktemp -d); cd "$WORK"
"$BIN/sitoo-sync" simulator --port "$PORT" --error-rate 0.05 --malformed-every 40 \
  --registers-per-store 6 --days 30 > sim.out 2>&1 &
SIM=$!; trap 'kill $SIM 2>/dev/null' EXIT
for _ in $(seq 60); do grep -q Ctrl-C sim.out && break; sleep 0.5; done
eval "$(grep export sim.out)"
export SITOO_TARGET_URL=$URL SITOO_LOG_LEVEL=WARNING SITOO_CONCURRENCY=32
export SITOO_STREAMS=$("$BIN/python" -c 'from sitoo_sync.streams import STREAMS; print(",".join(STREAMS))')
export SITOO_PERSONAL_DATA=hash SITOO_PERSONAL_DATA_KEY=k3y-for-the-soak-only
SITOO_TARGET_SCHEMA=${TAG}_clean "$BIN/sitoo-sync" run --once > clean.log 2>&1 || echo "clean run failed"
for i in $(seq "$KILLS"); do
  SITOO_TARGET_SCHEMA=${TAG}_chaos "$BIN/sitoo-sync" run >> chaos.log 2>&1 &
  P=$!
  sleep "$("$BIN/python" -c 'import random; print(round(random.uniform(0.5, 6.0), 2))')"
  if (( i % 3 == 0 )); then kill -TERM $P; else kill -KILL $P; fi
  wait $P 2>/dev/null
done
for schema in ${TAG}_chaos ${TAG}_chaos ${TAG}_clean; do
  SITOO_TARGET_SCHEMA=$schema "$BIN/sitoo-sync" run --once >> final.log 2>&1 || echo "final run of $schema failed"
done
cd "$ROOT" && "$BIN/python" -m tests.soak.compare "$URL" "$KIND" "${TAG}_clean" "${TAG}_chaos"
STATUS=$?
for schema in ${TAG}_clean ${TAG}_chaos; do
  "$BIN/python" -c "import sys; from sitoo_sync.warehouse import drop_schema; drop_schema(sys.argv[1], sys.argv[2])" "$URL" "$schema"
done
echo "logs in $WORK"
exit $STATUS
