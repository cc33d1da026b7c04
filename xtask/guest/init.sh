#!/bin/sh
# /init of the vfio-trace lab guest. The host side (xtask/src/lab) shares a
# directory as 9p tag host0: run.sh in it is the job, out/ receives the results.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev
# The kernel may have found no /dev/console in the initramfs to give us.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp

# Listed in dependency order by the host (modprobe --show-depends).
while read -r module; do
    case "$module" in
    # Debian kernels lack VFIO_NOIOMMU; without this, attaching to the
    # emulated IOMMU fails with EPERM (no interrupt remapping).
    vfio_iommu_type1.ko) insmod "/lib/modules/$module" allow_unsafe_interrupts=1 ;;
    *) insmod "/lib/modules/$module" ;;
    esac || echo "init: insmod $module failed"
done </etc/modules.order

mkdir -p /mnt/host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host0 /mnt/host ||
    echo "init: mounting the host share failed"

# Every ivshmem device goes to vfio-pci.
for dev in /sys/bus/pci/devices/*; do
    [ "$(cat "$dev/vendor")" = 0x1af4 ] && [ "$(cat "$dev/device")" = 0x1110 ] || continue
    echo vfio-pci >"$dev/driver_override"
    echo "${dev##*/}" >/sys/bus/pci/drivers_probe
done

# Networking only when asked for: QEMU user-mode networking's fixed addresses.
if grep -qw vfio_trace.net /proc/cmdline; then
    while read -r module; do
        insmod "/lib/modules/$module" || echo "init: insmod $module failed"
    done </etc/modules.net
    ip link set lo up
    { ip link set eth0 up &&
        ip addr add 10.0.2.15/24 dev eth0 &&
        ip route add default via 10.0.2.2; } || echo "init: configuring eth0 failed"
fi

# VFIO pins the DMA-mapped memory.
ulimit -l unlimited
export PATH=/mnt/host/bin:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/tmp

if [ -f /mnt/host/run.sh ] && ! grep -qw vfio_trace.shell /proc/cmdline; then
    mkdir -p /mnt/host/out
    cd /mnt/host/out || exit
    # The pipe through tee would hide the job's status, so it goes via a file.
    { /bin/sh /mnt/host/run.sh; echo $? >/tmp/status; } 2>&1 | tee /mnt/host/out/guest.log
    cat /tmp/status >/mnt/host/out/status
    sync
else
    cd /
    setsid cttyhack sh
fi
poweroff -f
