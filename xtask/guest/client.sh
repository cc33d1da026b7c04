#!/bin/sh
# A real VFIO client: Debian's QEMU, staged into the share by the host
# (xtask/src/client.rs), assigns the first vfio-pci device to a nested VM.
# SeaBIOS boots to "No bootable device", one monitor system_reset resets the
# device again, SeaBIOS reaches the same line again, and the monitor quits.
#
#   sh /mnt/host/client.sh VERSION NAME [BDF]
#
# VERSION names the tree /mnt/host/qemu-VERSION. Writes NAME.bios.log
# (the serial port, where SeaBIOS writes its screen without a display) and NAME.qemu.log (QEMU's stderr) in the working
# directory; prints one line per step with the seconds since QEMU started.
# Exits non-zero with the reason when a step fails or takes too long.

VERSION=$1
NAME=$2
BDF=${3:-$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* 2>/dev/null | head -1)")}
Q=/mnt/host/qemu-$VERSION
# Under TCG SeaBIOS needs 4-5 s to give up; far more means QEMU is stuck.
BOOT_TIMEOUT=90
QUIT_TIMEOUT=30

fail() {
  echo "client qemu-$VERSION: $*" >&2
  [ -f "$NAME.qemu.log" ] && tail -n 5 "$NAME.qemu.log" | sed 's/^/  qemu: /' >&2
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  exit 1
}

[ -n "$VERSION" ] && [ -n "$NAME" ] || fail "usage: client.sh VERSION NAME [BDF]"
[ -d "$Q" ] || fail "no $Q: the host stages it (--client)"
[ -e "/sys/bus/pci/drivers/vfio-pci/$BDF" ] || fail "no vfio-pci device ${BDF:-at all}"
LDSO=
for l in $Q/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $Q/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
  [ -e "$l" ] && LDSO=$l && break
done
[ -n "$LDSO" ] || fail "no ld-linux-x86-64.so.2 in $Q"

now() { awk '{ print $1 }' /proc/uptime; }
since() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# A zombie still answers kill -0.
alive() { [ -e /proc/$PID/status ] && ! grep -qs '^State:.*Z' /proc/$PID/status; }
booted() {
  n=$(grep -c "No bootable device" "$NAME.bios.log" 2>/dev/null)
  echo "${n:-0}"
}

# wait_boots N: until SeaBIOS has given up N times.
wait_boots() {
  t=0
  while [ "$(booted)" -lt "$1" ]; do
    alive || fail "QEMU exited before boot $1 ended ($(since) s)"
    [ $t -ge $((BOOT_TIMEOUT * 10)) ] && fail "boot $1 did not reach 'No bootable device' within $BOOT_TIMEOUT s"
    sleep 0.1
    t=$((t + 1))
  done
  echo "client qemu-$VERSION: boot $1 reached 'No bootable device' at $(since) s"
}

# The type1 IOMMU pins all guest memory and the BAR.
ulimit -l unlimited
MON=/tmp/client-mon.$$
rm -f "$MON.in" "$MON.out" "$NAME.bios.log" "$NAME.qemu.log"
mkfifo "$MON.in" "$MON.out" || fail "mkfifo $MON"
START=$(now)
# The accelerator is a module (accel-tcg-x86_64.so). bios-256k.bin is a real
# file only under seabios's own directory (qemu's is an absolute symlink to
# it), kvmvapic.bin is in qemu's: QEMU searches every -L in turn.
QEMU_MODULE_DIR=$Q/usr/lib/x86_64-linux-gnu/qemu \
  "$LDSO" --library-path "$Q/lib/x86_64-linux-gnu:$Q/usr/lib/x86_64-linux-gnu:$Q/usr/lib/x86_64-linux-gnu/pulseaudio" \
  "$Q/usr/bin/qemu-system-x86_64" -accel tcg -machine q35 -m 256 -nodefaults -nographic \
  -L "$Q/usr/share/seabios" -L "$Q/usr/share/qemu" \
  -device "vfio-pci,host=$BDF" \
  -monitor "pipe:$MON" \
  -serial "file:$NAME.bios.log" \
  </dev/null >"$NAME.qemu.log" 2>&1 &
PID=$!
# The monitor's replies are not needed; draining them keeps QEMU from blocking.
cat "$MON.out" >/dev/null &
DRAIN=$!

wait_boots 1
echo system_reset >"$MON.in"
wait_boots 2
echo quit >"$MON.in"
t=0
while alive; do
  [ $t -ge $((QUIT_TIMEOUT * 10)) ] && fail "QEMU still ran $QUIT_TIMEOUT s after quit"
  sleep 0.1
  t=$((t + 1))
done
wait "$PID"
status=$?
kill "$DRAIN" 2>/dev/null
rm -f "$MON.in" "$MON.out"
[ $status = 0 ] || fail "QEMU exited $status"
echo "client qemu-$VERSION: quit at $(since) s"
