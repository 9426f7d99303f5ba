#!/usr/bin/env bash
# Resident memory of the daemon alone per synced row (issue 17): the release `sheetsync` daemon
# and the release `sheetsync-emulator` run as two processes, so the emulator's copy of the Sheet
# is not counted. For each row count, a fresh SQLite table `items(id, name, qty, price)` is
# synced into an empty tab (no quotas, no latency); once the daemon logs "initial sync done",
# its VmRSS is sampled every half second for SHEETSYNC_MEMORY_SETTLE seconds (default 60) and
# the median kept (what it holds between cycles: the polling cycles' full reads come and go),
# then its VmHWM (peak). The live heap (jemalloc's count of allocated bytes, from /metrics) is
# sampled alongside: what RSS holds beyond it is the allocator's free space. The bytes per row
# are the slope between two sizes, so what the daemon holds whatever the size (code, runtime,
# buffers) drops out.
#
#   examples/sheetsync/benches/memory.sh            # 100,000 and 1,000,000 rows
#   examples/sheetsync/benches/memory.sh 10000 50000
#
# Needs Linux (/proc), sqlite3 and curl. Builds both binaries in release first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
[ $# -gt 0 ] || set -- 100000 1000000
sizes=("$@")
settle=${SHEETSYNC_MEMORY_SETTLE:-60}

cargo build --release -q -p sheetsync-cli --bin sheetsync
cargo build --release -q -p sheetsync-emulator --features cli --bin sheetsync-emulator
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }
# The allocator's live bytes, in kB, from the daemon's /metrics (0 without jemalloc).
heap_kb() {
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^sheetsync_heap_allocated_bytes/ { v = $2 } END { printf "%d\n", v / 1024 }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run_one() { # rows
  local rows=$1 eport dport db cfg log
  eport=$(free_port); dport=$(free_port)
  "$target/sheetsync-emulator" --port "$eport" --no-quota >"$work/emulator.log" 2>&1 &
  local emu=$!; pids+=("$emu")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$eport/__emulator/counters" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST "http://127.0.0.1:$eport/__emulator/spreadsheets" -H 'content-type: application/json' \
    -d '{"spreadsheetId":"memory","properties":{"title":"memory"},"sheets":[{"properties":{"sheetId":0,"title":"items","gridProperties":{"rowCount":1000,"columnCount":4}}}]}' >/dev/null
  db="$work/items-$rows.db"
  sqlite3 "$db" "create table items(id integer primary key, name text not null, qty integer, price text);
    with recursive n(i) as (select 1 union all select i + 1 from n where i < $rows)
    insert into items select i, 'item ' || i, i % 97, (i % 1000) || '.25' from n;"
  cfg="$work/sheetsync-$rows.toml"
  cat >"$cfg" <<EOF
[sheets]
base_url = "http://127.0.0.1:$eport/"
[server]
listen = "127.0.0.1:$dport"
[log]
format = "human"
filter = "info,sqlx=warn"
[[mapping]]
name = "items"
spreadsheet_id = "memory"
sheet_id = 0
database_url = "sqlite://$db"
table = "items"
EOF
  log="$work/daemon-$rows.log"
  "$target/sheetsync" run --config "$cfg" >"$log" 2>&1 &
  local daemon=$!; pids+=("$daemon")
  local start=$SECONDS
  until grep -q "initial sync done" "$log"; do
    if ! kill -0 "$daemon" 2>/dev/null; then echo "the daemon stopped:" >&2; cat "$log" >&2; exit 1; fi
    if grep -q "initial sync failed" "$log"; then cat "$log" >&2; exit 1; fi
    sleep 0.5
  done
  local took=$((SECONDS - start))
  # The cycles after the sync still read the tab in full now and then, and each read holds
  # its answer for a moment: what the daemon holds between them is the median of the samples.
  local rss hwm live samples=() lives=()
  for _ in $(seq 1 $((settle * 2))); do
    sleep 0.5
    samples+=("$(kb VmRSS "$daemon")")
    lives+=("$(heap_kb "$dport")")
  done
  rss=$(median "${samples[@]}")
  live=$(median "${lives[@]}")
  hwm=$(kb VmHWM "$daemon")
  echo "$rows $rss $hwm $took $live"
  kill "$daemon" "$emu"; wait "$daemon" "$emu" 2>/dev/null || true
}

echo "| rows | daemon RSS after the initial sync (median over ${settle} s) | live heap (median) | peak RSS | initial sync |" >&2
echo "|---|---|---|---|---|" >&2
results=()
for rows in "${sizes[@]}"; do
  line=$(run_one "$rows")
  read -r r rss hwm took live <<<"$line"
  awk -v r="$r" -v rss="$rss" -v hwm="$hwm" -v t="$took" -v live="$live" \
    'BEGIN { printf "| %d | %.1f MB | %.1f MB | %.1f MB | %d s |\n", r, rss * 1.024 / 1000, live * 1.024 / 1000, hwm * 1.024 / 1000, t }' >&2
  results+=("$line")
done
if [ "${#results[@]}" -ge 2 ]; then
  read -r r0 rss0 hwm0 _ live0 <<<"${results[0]}"
  read -r r1 rss1 hwm1 _ live1 <<<"${results[-1]}"
  per_row() { echo $(( ($2 - $1) * 1024 / (r1 - r0) )); }
  echo "bytes per row between $r0 and $r1 rows: RSS $(per_row "$rss0" "$rss1"), live heap $(per_row "$live0" "$live1"), peak $(per_row "$hwm0" "$hwm1")" >&2
fi
