#!/bin/busybox sh
# /init of a kernel-matrix guest (scripts/kernels/boot.ts). Loads the modules the
# initramfs carries, mounts the host's root read-only (9p, tag hostroot) at
# /host, gives it a fresh /proc, /sys, /dev, cgroup2 (at /sys/fs/cgroup), bpffs
# (at /sys/fs/bpf), /tmp and /run, runs /cmd (a shell script written by the
# runner) chrooted into it, prints the exit status between markers, powers off.
/bin/busybox mkdir -p /proc /sys /dev /host /bin
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
nonce=$(cat /nonce)
for m in $(cat /modules.order); do
  insmod "/modules/$m.ko" 2>/dev/null || echo "@@ML-GUEST-WARN insmod $m failed"
done
msize=262144
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=$msize,cache=loose hostroot /host; then
  echo "@@ML-GUEST-FATAL $nonce cannot mount the host root over 9p"
  poweroff -f
fi
for d in proc sys dev; do mount -o bind /$d /host/$d; done
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
mount -t bpf bpf /host/sys/fs/bpf
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
ip link set lo up 2>/dev/null
echo "@@ML-GUEST-READY $nonce uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
echo "@@ML-GUEST-BEGIN $nonce"
cp /cmd /dev/.mlcmd
chroot /host /bin/sh /dev/.mlcmd </dev/null 2>&1
rc=$?
echo "@@ML-GUEST-END $nonce exit=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
