#!/usr/bin/env bash
# Prepare this machine (Debian 12, as root) to build, test and demo meshlane:
# Debian packages, the bpffs mount, npm packages, then the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: meshlane's setup loads eBPF programs and creates namespaces: run it as root" >&2
  exit 1
fi

# clang/llvm/libbpf-dev build bpf/; bpftool loads and pins; iproute2 makes the
# sandbox netns and veths; containernetworking-plugins are the primary CNI the
# plugin chains after; iptables is Istio's baseline, and nftables (the nft
# tool) writes Istio's native nftables ruleset in the rules-reader tests; socat is a test peer;
# gcc/libc6-dev build the C test programs in testing/tools; openssl makes the test
# certificates of the Kubernetes API tests; containerd (with ctr and its runc
# shim), runc and busybox-static run the end-to-end test's private containerd
# and its locally built pause image (test/e2e/containerd.test.ts);
# qemu-system-x86 boots Debian's kernels for the kernel matrix (scripts/kernels/);
# haproxy (the benchmark's sidecars and server app), wrk (closed-loop load) and
# iperf3 (throughput) are what `npm run bench` runs (its open-loop load
# generator is testing/tools/mlload.c, built with gcc).
APT_PACKAGES=(clang llvm bpftool libbpf-dev iproute2 containernetworking-plugins iptables nftables socat gcc libc6-dev openssl containerd runc busybox-static qemu-system-x86 haproxy wrk iperf3)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! mountpoint -q /sys/fs/bpf; then
  echo "setup: mounting bpffs at /sys/fs/bpf" >&2
  mount -t bpf bpf /sys/fs/bpf
fi
if ! grep -q ' cgroup2 ' /proc/mounts; then
  echo "setup: no cgroup2 mount on this machine; meshlane needs cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified)" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
npm run --silent build >&2
