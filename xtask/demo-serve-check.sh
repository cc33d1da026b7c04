#!/bin/bash
# Checks `cargo xtask demo --serve` from the host, as a user would use it:
# start it, wait for the URL it prints, scrape twice through the forwarded
# port (vfio_trace_faults_total must grow), press "Ctrl-C" (SIGINT to its
# process group, as a terminal does), and check that it stopped and that its
# QEMU is gone. Usage: xtask/demo-serve-check.sh [PORT]
set -eu
set -m # the demo gets a process group of its own, as a terminal's job would

port=${1:-9748}
url=http://127.0.0.1:$port/metrics
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$(dirname "$0")/.."

cargo xtask demo --serve --port "$port" >"$log" 2>&1 &
demo=$!

fail() {
    echo "FAIL: $*"
    cat "$log"
    kill -TERM -- "-$demo" 2>/dev/null || true
    exit 1
}

# Every process under the demo's, by parent pid.
descendants() {
    local kids
    kids=$(ps -eo pid=,ppid= | awk -v p="$1" '$2 == p { print $1 }')
    for k in $kids; do
        echo "$k"
        descendants "$k"
    done
}

# The first boot may build the guest binary and the initramfs.
for _ in $(seq 1800); do
    grep -qF "$url" "$log" && break
    kill -0 "$demo" 2>/dev/null || fail "the demo exited before printing $url"
    sleep 1
done
grep -qF "$url" "$log" || fail "no $url after 30 minutes"
grep -F "$url" "$log"

qemu=$(for p in $(descendants "$demo"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ] && echo "$p"
done)
[ -n "$qemu" ] || fail "no QEMU under the demo"
echo "QEMU: pid $qemu"

faults() {
    curl -sf "$url" | awk '/^vfio_trace_faults_total[{ ]/ { s += $NF } END { print s + 0 }'
}
curl -sf "$url" | grep '^vfio_trace_faults_total' || fail "no vfio_trace_faults_total"
first=$(faults)
sleep 20
curl -sf "$url" | grep '^vfio_trace_faults_total'
second=$(faults)
echo "vfio_trace_faults_total, summed: $first, then $second 20 s later"
[ "$second" -gt "$first" ] || fail "faults did not grow"

kill -INT -- "-$demo"
status=0
wait "$demo" || status=$?
tail -n 3 "$log"
[ "$status" = 0 ] || fail "the demo exited with $status"
for p in $qemu; do
    [ ! -e "/proc/$p" ] || fail "QEMU $p is still running"
done
echo "OK: faults grew, the demo stopped cleanly, no QEMU left"
