#!/bin/busybox sh
# /init of a kernel-matrix guest (scripts/kernels/boot.ts). Loads the modules the
# initramfs carries, mounts the host's root read-only (9p, tag hostroot) at
# /host, gives it a fresh /proc, /sys, /dev, cgroup2 (at /sys/fs/cgroup), bpffs
# (at /sys/fs/bpf), /tmp and /run (keeping the dirs named in /keep in view),
# runs /cmd (a shell script written by the
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
# The guest's own /tmp and /run hide the host's; a repo (the command's dir) that
# lies below them is kept in view: bound aside first, then back on the tmpfs.
: > /keep.list
i=0
while read -r p; do
  case "$p" in /tmp/*|/run/*) ;; *) continue ;; esac
  [ -d "/host$p" ] || continue
  mkdir -p "/keep.d/$i"
  mount -o bind "/host$p" "/keep.d/$i" && echo "$i $p" >> /keep.list
  i=$((i + 1))
done < /keep
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
while read -r i p; do
  mkdir -p "/host$p" && mount -o bind "/keep.d/$i" "/host$p" || echo "@@ML-GUEST-WARN cannot keep $p in view"
done < /keep.list
ip link set lo up 2>/dev/null
echo "@@ML-GUEST-READY $nonce uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
echo "@@ML-GUEST-BEGIN $nonce"
cp /cmd /dev/.mlcmd
chroot /host /bin/sh /dev/.mlcmd </dev/null 2>&1
rc=$?
echo "@@ML-GUEST-END $nonce exit=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
