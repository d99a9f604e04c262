#!/usr/bin/env bash
# Soak test of the service: the demo apps on the demo clip replayed in a loop
# as fast as analysis goes, for SECONDS (default 3600), sampling the service's
# resident memory (from `mainstream status --json`) every INTERVAL seconds.
# Prints one line per sample and a JSON summary with the first and last RSS.
#   benches/soak.sh [SECONDS] [INTERVAL] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3600}
every=${2:-60}
bin=${3:-target/release/mainstream}
[ -x "$bin" ] || cargo build --release --locked
dir=$(mktemp -d /tmp/mainstream-soak.XXXXXX)
mkdir -p "$dir/apps.d" "$dir/state"
root=$(pwd)
cat >"$dir/config.toml" <<TOML
[device]
budget_cores = 1.0
threads = 1
state_dir = "state"
base = "$root/models/mobilenet_v2/manifest.toml"

[[camera]]
name = "campus"
source = "$root/models/demo/demo.mjpeg"
fps = 10
pace = "fast"
loop = true
TOML
for app in birds vehicles mammals; do
  printf 'camera = "campus"\npackage = "%s/models/apps/%s"\nvoting = 2\n' "$root" "$app" >"$dir/apps.d/$app.toml"
done
# Reuse a measured cost profile if the demo has one.
[ -f target/demo-state/profile.bin ] && cp target/demo-state/profile.bin "$dir/state/"
"$bin" run --config "$dir/config.toml" --duration "$secs" >"$dir/events.jsonl" 2>"$dir/service.log" &
pid=$!
first=""
last=""
t0=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  sleep "$every"
  s=$("$bin" status --json --config "$dir/config.toml" 2>/dev/null) || continue
  line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["status"]; c=d["cameras"][0]; print(d["rss_kib"], c["frames"], c["analysed"])' "$s") || continue
  read -r rss frames analysed <<<"$line"
  [ -n "$first" ] || first=$rss
  last=$rss
  echo "t=$(( $(date +%s) - t0 ))s rss_kib=$rss frames=$frames analysed=$analysed"
done
wait "$pid"
echo "{\"seconds\": $secs, \"rss_first_kib\": ${first:-0}, \"rss_last_kib\": ${last:-0}, \"events\": $(grep -c '"type":"event"' "$dir/events.jsonl" || true), \"dir\": \"$dir\"}"
