#!/bin/bash
# docs/prometheus-faults.png: a host Prometheus scrapes `cargo xtask demo
# --serve` (already running) and headless Chromium screenshots its graph of
# vfio_trace_faults_total. Both come from Debian packages unpacked with
# `dpkg-deb -x`, nothing installed:
#   PROM_ROOT      prometheus and the libjs-* / fonts-glyphicons-halflings
#                  packages its web UI links to
#   CHROMIUM_ROOT  chromium, chromium-common and the libraries this host lacks
#                  (apt-get -s install --no-install-recommends chromium lists them)
# Usage: PROM_ROOT=DIR CHROMIUM_ROOT=DIR xtask/prometheus-screenshot.sh [SECONDS] [PORT]
set -eu

seconds=${1:-180}
port=${2:-9748}
: "${PROM_ROOT:?unpacked prometheus}" "${CHROMIUM_ROOT:?unpacked chromium}"
cd "$(dirname "$0")/.."
out=$PWD/docs/prometheus-faults.png
work=$(mktemp -d)
prom_port=19090

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
scrape_configs:
  - job_name: vfio-trace
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
"$PROM_ROOT/usr/bin/prometheus" --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/data" --web.listen-address=127.0.0.1:$prom_port \
    --web.local-assets="$PROM_ROOT/usr/share/prometheus/web/" \
    --web.console.templates="$PROM_ROOT/etc/prometheus/consoles" \
    --web.console.libraries="$PROM_ROOT/etc/prometheus/console_libraries" \
    >"$work/prometheus.log" 2>&1 &
prom=$!
trap 'kill "$prom" 2>/dev/null; wait "$prom" 2>/dev/null; rm -rf "$work"' EXIT

sleep "$seconds"
curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=sum(vfio_trace_faults_total)"
echo

libs=$CHROMIUM_ROOT/usr/lib/x86_64-linux-gnu
range=$(((seconds + 59) / 60))m
LD_LIBRARY_PATH=$libs:$libs/pulseaudio "$CHROMIUM_ROOT/usr/lib/chromium/chromium" \
    --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$work/chromium" --hide-scrollbars --window-size=1400,900 \
    --virtual-time-budget=15000 --screenshot="$out" \
    "http://127.0.0.1:$prom_port/graph?g0.expr=vfio_trace_faults_total&g0.tab=0&g0.range_input=$range"
echo "$out"
