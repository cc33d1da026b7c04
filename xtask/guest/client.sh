#!/bin/sh
# A real VFIO client: Debian's QEMU, staged into the share by the host
# (xtask/src/client.rs), assigns the first vfio-pci device to a nested VM.
# SeaBIOS boots to "No bootable device", one monitor system_reset resets the
# device again, SeaBIOS reaches the same line again, and the monitor quits.
#
#   sh /mnt/host/client.sh [--linux] VERSION NAME [BDF]
#
# With --linux the nested VM boots Linux instead (the lab's own kernel, staged
# as /mnt/host/l2/vmlinuz, with a busybox initramfs made here), to its init
# and again after the reset: its PCI probe clears memory decode while sizing
# BARs, which zaps the BAR and makes QEMU's DMA map fault it in again.
#
# VERSION names the tree /mnt/host/qemu-VERSION. Writes NAME.bios.log
# (the serial port, where SeaBIOS writes its screen without a display) and NAME.qemu.log (QEMU's stderr) in the working
# directory; prints one line per step with the seconds since QEMU started.
# Exits non-zero with the reason when a step fails or takes too long.

LINUX=
[ "$1" = --linux ] && LINUX=1 && shift
VERSION=$1
NAME=$2
BDF=${3:-$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* 2>/dev/null | head -1)")}
Q=/mnt/host/qemu-$VERSION
# Under TCG SeaBIOS needs 4-5 s to give up, Linux ~30 s to reach its init;
# far more means QEMU is stuck.
BOOT_TIMEOUT=90
BOOTED="No bootable device"
if [ -n "$LINUX" ]; then
  BOOT_TIMEOUT=300
  BOOTED="vfio-trace-l2: init"
fi
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

# l2_initrd: the nested VM's initramfs, busybox and an init that says it
# runs and then waits, built once per guest boot.
L2=/tmp/client-l2.cpio.gz
l2_initrd() {
  [ -s $L2 ] && return
  r=/tmp/client-l2
  rm -rf $r && mkdir -p $r/bin $r/dev $r/proc || return 1
  cp /bin/busybox $r/bin/ || return 1
  cat >$r/init <<'EOI'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
echo "vfio-trace-l2: init" >/dev/ttyS0
while :; do /bin/busybox sleep 3600; done
EOI
  chmod 755 $r/init
  (cd $r && find . | cpio -o -H newc 2>/dev/null | gzip -1 >$L2.tmp) && mv $L2.tmp $L2
}
if [ -n "$LINUX" ]; then
  [ -f /mnt/host/l2/vmlinuz ] || fail "no /mnt/host/l2/vmlinuz: the host stages it (--l2 linux)"
  l2_initrd || fail "building the nested VM's initramfs failed"
  # With 7.2's default model (qemu64) the nested kernel once double-faulted
  # early in boot; max is the model the lab itself runs.
  set -- -cpu max -kernel /mnt/host/l2/vmlinuz -initrd $L2 -append "console=ttyS0 panic=-1 loglevel=4"
else
  set --
fi

now() { awk '{ print $1 }' /proc/uptime; }
since() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# A zombie still answers kill -0.
alive() { [ -e /proc/$PID/status ] && ! grep -qs '^State:.*Z' /proc/$PID/status; }
booted() {
  n=$(grep -c "$BOOTED" "$NAME.bios.log" 2>/dev/null)
  echo "${n:-0}"
}

# wait_boots N: until SeaBIOS has given up N times.
wait_boots() {
  t=0
  while [ "$(booted)" -lt "$1" ]; do
    alive || fail "QEMU exited before boot $1 ended ($(since) s)"
    grep -q "Kernel panic" "$NAME.bios.log" 2>/dev/null && fail "the nested kernel panicked ($NAME.bios.log)"
    [ $t -ge $((BOOT_TIMEOUT * 10)) ] && fail "boot $1 did not reach '$BOOTED' within $BOOT_TIMEOUT s"
    sleep 0.1
    t=$((t + 1))
  done
  echo "client qemu-$VERSION: boot $1 reached '$BOOTED' at $(since) s"
}

# The type1 IOMMU pins all guest memory and the BAR.
ulimit -l unlimited
MON=/tmp/client-mon.$$
rm -f "$MON.in" "$MON.out" "$NAME.bios.log" "$NAME.qemu.log"
mkfifo "$MON.in" "$MON.out" || fail "mkfifo $MON"
START=$(now)
# 7.2's TCG is a module (accel-tcg-x86_64.so); 10's is built in.
# bios-256k.bin is a real file only under seabios's own directory (qemu's is
# an absolute symlink to it); kvmvapic.bin and linuxboot_dma.bin are in
# qemu's: QEMU searches every -L in turn.
QEMU_MODULE_DIR=$Q/usr/lib/x86_64-linux-gnu/qemu \
  "$LDSO" --library-path "$Q/lib/x86_64-linux-gnu:$Q/usr/lib/x86_64-linux-gnu:$Q/usr/lib/x86_64-linux-gnu/pulseaudio" \
  "$Q/usr/bin/qemu-system-x86_64" -accel tcg -machine q35 -m 256 -nodefaults -nographic \
  -L "$Q/usr/share/seabios" -L "$Q/usr/share/qemu" \
  -device "vfio-pci,host=$BDF" \
  -monitor "pipe:$MON" \
  -serial "file:$NAME.bios.log" "$@" \
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
