#!/bin/bash
# Hand-run smoke test of dist/bpf/meshlane.o on this machine (root, cgroup2,
# bpffs). NOT the project's kernel test suite (that lives in test/); this is
# the check the datapath author ran, kept so that it can be repeated.
#
#   node scripts/build.mjs bpf && bpf/smoke/run.sh
#
# Makes, under a unique suffix, and removes on exit: a pin dir under
# /sys/fs/bpf, a cgroup subtree under the cgroup2 mount (programs attached
# there only), two netns "pods" A (10.99.0.1, fd99::1) and B (10.99.0.2,
# fd99::2) on a veth pair, pod cgroups kubepods/besteffort/pod{A,B}/ctr,
# Python test proxies (uid 1337, 15001/15006) and an echo server in B.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OBJ=${OBJ:-$HERE/../../dist/bpf/meshlane.o}
CG2=${CG2:-$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)}
BPFFS=${BPFFS:-/sys/fs/bpf}
ID=mltest-h1-smoke-$$
P=$BPFFS/$ID
CG=$CG2/$ID
NSA=mlA$$ NSB=mlB$$
W=$(mktemp -d /tmp/$ID.XXXX)
PY=/usr/bin/python3
PIDS=()
FAIL=0

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	bpftool prog detach pinned $P/progs/ml_redirect msg_verdict pinned $P/maps/ml_sock_pairs 2>/dev/null
	for t in connect4 connect6 getsockopt; do bpftool cgroup detach $CG $t pinned $P/progs/ml_$t 2>/dev/null; done
	bpftool cgroup detach $CG sock_ops pinned $P/progs/ml_sockops 2>/dev/null
	ip netns del $NSA 2>/dev/null; ip netns del $NSB 2>/dev/null
	for d in kubepods/besteffort/podA/ctr kubepods/besteffort/podB/ctr kubepods/besteffort/podA \
		kubepods/besteffort/podB kubepods/besteffort kubepods other ''; do
		[ -d "$CG/$d" ] && rmdir "$CG/$d" 2>/dev/null
	done
	rm -rf "$P" "$W"
}
trap cleanup EXIT

check() { # name expected-substring actual
	if [[ "$3" == *"$2"* ]]; then echo "ok   $1"; else echo "FAIL $1: want '$2', got '$3'"; FAIL=1; fi
}
# run a command in a pod cgroup + netns as a uid (cgroup first: ip netns exec remounts /sys)
inpod() { # cgroup-rel netns uid cmd...
	local cg=$1 ns=$2 uid=$3; shift 3
	bash -c 'echo $$ > "$0/cgroup.procs" && exec ip netns exec "$1" setpriv --reuid="$2" --regid="$2" --clear-groups "${@:3}"' \
		"$CG/$cg" "$ns" "$uid" "$@"
}
A() { inpod kubepods/besteffort/podA/ctr $NSA "$@"; }
B() { inpod kubepods/besteffort/podB/ctr $NSB "$@"; }
hex() { $PY $HERE/hex.py "$@"; }
setcfg() { local ip=$1; shift; bpftool map update pinned $P/maps/ml_pods_ip key hex $(hex ip $ip) value hex $(hex cfg "$@"); }
settings() { bpftool map update pinned $P/maps/ml_settings key hex 00 00 00 00 value hex $(hex settings $1); }
client() { "$@" 2>&1 | tail -1; }
captured() { # uid dst port -> "captured" or "direct" (by the proxy log)
	: > $W/proxy.log
	client A $1 $PY $W/client.py $2 $3 >/dev/null
	grep -q proxyA $W/proxy.log && echo captured || echo direct
}

# ---- setup ----------------------------------------------------------------
[ -f "$OBJ" ] || { echo "missing $OBJ: node scripts/build.mjs bpf"; exit 1; }
grep -q " $BPFFS bpf " /proc/mounts || mount -t bpf bpf $BPFFS
cp $HERE/*.py $W/ && chmod 755 $W && chmod 644 $W/*.py && touch $W/proxy.log && chmod 666 $W/proxy.log
mkdir -p $P $CG/kubepods/besteffort/podA/ctr $CG/kubepods/besteffort/podB/ctr $CG/other
bpftool prog loadall $OBJ $P/progs pinmaps $P/maps || exit 1
for t in connect4 connect6 getsockopt; do bpftool cgroup attach $CG $t pinned $P/progs/ml_$t || exit 1; done
bpftool cgroup attach $CG sock_ops pinned $P/progs/ml_sockops || exit 1
bpftool prog attach pinned $P/progs/ml_redirect msg_verdict pinned $P/maps/ml_sock_pairs || exit 1
ip netns add $NSA; ip netns add $NSB
ip link add mlA0 netns $NSA type veth peer name mlB0 netns $NSB
for ns in $NSA $NSB; do ip -n $ns link set lo up; ip -n $ns addr add ::6/128 dev lo; done
ip -n $NSA addr add 10.99.0.1/24 dev mlA0; ip -n $NSB addr add 10.99.0.2/24 dev mlB0
ip -n $NSB addr add 10.99.0.3/24 dev mlB0 # a non-pod address
ip -n $NSA addr add fd99::1/64 dev mlA0 nodad; ip -n $NSB addr add fd99::2/64 dev mlB0 nodad
ip -n $NSA link set mlA0 up; ip -n $NSB link set mlB0 up
for pod in "A 10.99.0.1 fd99::1" "B 10.99.0.2 fd99::2"; do
	set -- $pod
	id=$(stat -c %i $CG/kubepods/besteffort/pod$1)
	bpftool map update pinned $P/maps/ml_pods_cg key hex $(hex u64 $id) value hex $(hex podcg $2 $3 7 0)
	setcfg $2 0 0; setcfg $3 0 0
done
A 1337 $PY $W/proxy.py proxyA $W/proxy.log & PIDS+=($!)
B 1337 $PY $W/proxy.py proxyB $W/proxy.log & PIDS+=($!)
B 1000 $PY $W/server.py 8080 & PIDS+=($!)
sleep 1

# ---- outbound and same-node inbound ---------------------------------------
: > $W/proxy.log
check "v4 app -> B:8080 through both proxies" "peer=127.0.0.6 len=5" "$(client A 1000 $PY $W/client.py 10.99.0.2 8080)"
check "  proxy A learned B:8080 and the app's pod IP" "proxyA :15001 peer=('10.99.0.1'" "$(grep 'proxyA :15001 peer' $W/proxy.log)"
check "  proxy A learned B:8080" "odst=10.99.0.2:8080" "$(grep 'proxyA :15001 peer' $W/proxy.log)"
check "  proxy B at 15006 learned B:8080" "odst=10.99.0.2:8080" "$(grep 'proxyB :15006 peer' $W/proxy.log)"
: > $W/proxy.log
check "v6 app -> [B]:8080 through both proxies" "peer=::6 len=5" "$(client A 1000 $PY $W/client.py fd99::2 8080)"
check "  proxy A learned [fd99::2]:8080" "odst=fd99::2:8080" "$(grep 'proxyA :15001 peer' $W/proxy.log)"
check "  proxy B learned [fd99::2]:8080" "odst=fd99::2:8080" "$(grep 'proxyB :15006 peer' $W/proxy.log)"
check "v4-mapped on a v6 socket" "peer=127.0.0.6" "$(client A 1000 $PY $W/client.py ::ffff:10.99.0.2 8080)"

# ---- never touched --------------------------------------------------------
check "unregistered cgroup" "peer=10.99.0.1 " "$(client inpod other $NSA 1000 $PY $W/client.py 10.99.0.2 8080)"
check "loopback v4" "peer=127.0.0.1 " "$(client B 1000 $PY $W/client.py 127.0.0.1 8080)"
check "loopback v6" "peer=::1 " "$(client B 1000 $PY $W/client.py ::1 8080)"
check "app -> own pod IP" "peer=10.99.0.2 " "$(client B 1000 $PY $W/client.py 10.99.0.2 8080)"
check "proxy uid -> non-pod" "peer=10.99.0.1 " "$(client A 1337 $PY $W/client.py 10.99.0.3 8080)"
check "proxy uid -> own pod" "peer=10.99.0.2 " "$(client B 1337 $PY $W/client.py 10.99.0.2 8080)"

# ---- include / exclude ----------------------------------------------------
# cfg args: flags status-port [ii= ei= io= eo= ic= ec=]; flags 1=IN_PORTS_LISTED 2=OUT_CIDRS_LISTED 4=OUT_CIDRS_EXCL_ALL
t() { check "$1" "$2" "$(captured ${U:-1000} $3 $4)"; }
setcfg 10.99.0.1 0 0 eo=8080;          t "excludeOutboundPorts=8080 v4" direct 10.99.0.2 8080
                                         t "excludeOutboundPorts=8080 v6" direct fd99::2 8080
setcfg 10.99.0.1 0 0 ec=10.99.0.2/32;  t "excludeOutboundIPRanges=10.99.0.2/32" direct 10.99.0.2 8080
                                         t "  other v4 dst" captured 10.99.0.3 8080
                                         t "  v6 dst" captured fd99::2 8080
setcfg 10.99.0.1 2 0;                  t "includeOutboundIPRanges='' v4" direct 10.99.0.2 8080
                                         t "includeOutboundIPRanges='' v6" direct fd99::2 8080
setcfg 10.99.0.1 2 0 io=8080;          t "include='' + includeOutboundPorts=8080" captured 10.99.0.2 8080
setcfg 10.99.0.1 2 0 ic=fd99::/64;     t "include fd99::/64, v4 dst" direct 10.99.0.2 8080
                                         t "include fd99::/64, v6 dst" captured fd99::2 8080
setcfg 10.99.0.1 2 0 ic=::/0;          t "include ::/0 does not match v4" direct 10.99.0.2 8080
setcfg 10.99.0.1 2 0 ic=10.99.0.0/24 ec=10.99.0.2/32; t "include /24, exclude /32" direct 10.99.0.2 8080
                                         t "  other in /24" captured 10.99.0.3 8080
setcfg 10.99.0.1 4 0 io=8080;          t "exclude '*' beats includeOutboundPorts" direct 10.99.0.2 8080
setcfg 10.99.0.1 0 0
for ip in 10.99.0.2 fd99::2; do setcfg $ip 0 0 ei=8080; done;  U=1337 t "B excludeInboundPorts=8080" direct 10.99.0.2 8080
for ip in 10.99.0.2 fd99::2; do setcfg $ip 1 0; done;          U=1337 t "B includeInboundPorts=''" direct 10.99.0.2 8080
for ip in 10.99.0.2 fd99::2; do setcfg $ip 1 0 ii=9090,8080; done
: > $W/proxy.log; client A 1337 $PY $W/client.py 10.99.0.2 8080 >/dev/null
check "B includeInboundPorts=9090,8080 -> proxy B" "proxyB :15006" "$(cat $W/proxy.log)"
for ip in 10.99.0.2 fd99::2; do setcfg $ip 0 8080; done;       U=1337 t "B status port 8080" direct 10.99.0.2 8080
for ip in 10.99.0.2 fd99::2; do setcfg $ip 0 0; done

# ---- getsockopt pass-through ----------------------------------------------
A 0 $PY $W/gso.py > $W/gso.in 2>&1
ip netns exec $NSA $PY $W/gso.py > $W/gso.out 2>&1
check "getsockopt of other options identical in and out of the cgroup" "identical" \
	"$(cmp -s $W/gso.in $W/gso.out && echo identical || diff $W/gso.in $W/gso.out)"
if command -v iptables-legacy >/dev/null; then
	ip netns exec $NSA sh -c 'for i in $(seq 1 150); do iptables-legacy -A INPUT -s 10.1.$i.0/24 -p tcp --dport $((1000+i)) -j ACCEPT; done' 2>/dev/null
	check "iptables-legacy -S (30 KB IPT_SO_GET_ENTRIES) unchanged" "$(ip netns exec $NSA iptables-legacy -S | md5sum)" \
		"$(A 0 iptables-legacy -S | md5sum)"
fi

# ---- sockmap ----------------------------------------------------------------
settings 1
for h in 10.99.0.2 fd99::2; do
	for sz in 1 65536 65537 4194304; do
		check "sockmap on $h $sz B" "len=$sz " "$(client A 1000 timeout 30 $PY $W/client.py $h 8080 $sz)"
	done
	check "sockmap on $h 200 concurrent x 100 kB" "ok 200 bad 0" "$(client A 1000 timeout 120 $PY $W/conc.py $h 200 100000)"
done
echo "info sockmap on, blocking client EAGAIN counts: $(for i in 1 2 3 4 5; do A 1000 $PY $W/bclient.py 10.99.0.2 8080 5 | cut -d' ' -f2; done | tr '\n' ' ')"
settings 3
check "sockmap proxy-only: blocking client, no EAGAIN" "eagain 0 eagain 0 eagain 0" \
	"$(for i in 1 2 3; do A 1000 $PY $W/bclient.py 10.99.0.2 8080 5 | cut -d' ' -f1,2; done | tr '\n' ' ')"
settings 0
sleep 1
check "no ml_sock_pairs entries left" "Found 0 elements" "$(bpftool map dump pinned $P/maps/ml_sock_pairs 2>&1 | grep -o 'Found [0-9]* elements')"
for m in ml_odst_tup ml_odst_ck; do
	check "no $m entries left" "entries=0" "entries=$(bpftool -j map dump pinned $P/maps/$m | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')"
done
echo "counters (summed over CPUs):"
bpftool -j map dump pinned $P/maps/ml_counters | $PY -c '
import json, sys
for e in json.load(sys.stdin):
    v = sum(x["value"] for x in e["values"])
    if v: print("  ", e["key"], v)'
[ $FAIL = 0 ] && echo "ALL OK" || echo "SOME CHECKS FAILED"
exit $FAIL
