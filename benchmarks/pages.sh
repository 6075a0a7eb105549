#!/bin/bash
# Page views under a spike (issue 16): wrk -t1 -c64 -d5s against one `livefeed serve --demo`
# process on the article page, /api/briefs and a 304 revalidation of the article page,
# with the server's and its Redis's CPU time per request (from /proc, so the figures mean
# something on a shared machine where requests/s alone do not).
#
#   benchmarks/pages.sh [label] [source dir]    # source dir: run that checkout's code instead
#                                               # (git archive main | tar -x -C /tmp/main)
set -eu
LABEL=${1:-now}; SRC=${2:-}; PORT=${PORT:-8731}
ROOT=$(cd "$(dirname "$0")/.." && pwd); PY=$ROOT/.venv/bin/python
DATA=$(mktemp -d); LOG=$DATA/serve.log
cd "${SRC:-$ROOT}"  # python -m runs the code of the working directory first
PYTHONPATH=$SRC "$PY" -m livefeed serve --demo --port "$PORT" --data-dir "$DATA/data" \
    --log-level warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.2; done
REDIS=$(pgrep -P $PID redis-server)
URL=http://127.0.0.1:$PORT/articles/xi-putin-moscow-talks
curl -s -o /dev/null "$URL"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }  # utime+stime, 100 per second
bench() {
    local name=$1; shift
    local c0 r0 c1 r1 out n
    c0=$(ticks $PID); r0=$(ticks "$REDIS")
    out=$(wrk -t1 -c64 -d5s --latency "$@" 2>&1)
    c1=$(ticks $PID); r1=$(ticks "$REDIS")
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    printf '%s | %s | %s req/s | p99 %s | server %s µs CPU/req | redis %s µs CPU/req | %s\n' \
        "$LABEL" "$name" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        "$(echo "$out" | awk '$1=="99%" {print $2}')" \
        $(( (c1 - c0) * 10000 / n )) $(( (r1 - r0) * 10000 / n )) \
        "$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr -s ' ' | tr '\n' ' ')"
}
echo "== $LABEL $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg)"
bench article "$URL"
bench briefs "http://127.0.0.1:$PORT/api/briefs"
ETAG=$(curl -sI "$URL" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
if [ -n "$ETAG" ]; then bench "article 304" -H "If-None-Match: $ETAG" "$URL"; fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
