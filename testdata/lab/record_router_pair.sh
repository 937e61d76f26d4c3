#!/usr/bin/env bash
# Records the same traffic at two points of one path, for the clock-alignment tests of
# `tracekit merge` (and `tracekit analyze`): a client and a server in two network namespaces,
# a router between them in a third (its client-side MAC has Check Point's OUI 00:1c:7f), and
# a capture on the client's and on the server's own interface. Both captures share the kernel
# clock, so their true offset is zero: the tests add a known offset with --shift and check that
# the estimate recovers it.
#
# Traffic: one TCP connection (a request/response exchange, five rounds, then the client
# closes), two UDP query/response pairs. Documentation addresses only:
#   client 192.0.2.10 — 192.0.2.1 [router] 198.51.100.1 — server 198.51.100.20
#
# Usage (as root): testdata/lab/record_router_pair.sh OUTDIR
# Writes OUTDIR/router-client.pcapng and OUTDIR/router-server.pcapng.
set -euo pipefail
out=$(realpath "${1:?usage: $0 OUTDIR}")
mkdir -p "$out"
here=$(dirname "$(realpath "$0")")
ns="tk-lab-$$"
cli="$ns-cli" rtr="$ns-rtr" srv="$ns-srv"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "$cli" "$rtr" "$srv"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

for n in "$cli" "$rtr" "$srv"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add c0 netns "$cli" type veth peer r0 netns "$rtr"
ip link add r1 netns "$rtr" type veth peer s0 netns "$srv"
ip -n "$rtr" link set r0 address 00:1c:7f:3a:00:01
ip -n "$cli" addr add 192.0.2.10/24 dev c0
ip -n "$rtr" addr add 192.0.2.1/24 dev r0
ip -n "$rtr" addr add 198.51.100.1/24 dev r1
ip -n "$srv" addr add 198.51.100.20/24 dev s0
for l in "$cli c0" "$rtr r0" "$rtr r1" "$srv s0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$cli" route add default via 192.0.2.1
ip -n "$srv" route add default via 198.51.100.1
ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
# Different initial TTLs on the two hosts, as between two operating systems.
ip netns exec "$srv" sysctl -qw net.ipv4.ip_default_ttl=128

ip netns exec "$cli" dumpcap -q -i c0 -s 0 -w "$out/router-client.pcapng" 2>/dev/null & pids+=($!)
ip netns exec "$srv" dumpcap -q -i s0 -s 0 -w "$out/router-server.pcapng" 2>/dev/null & pids+=($!)
ip netns exec "$srv" python3 "$here/lab_server.py" & pids+=($!)
sleep 2
# (no ping binary on this machine kind: ICMP is left out)
ip netns exec "$cli" python3 "$here/lab_client.py" 198.51.100.20
sleep 1
kill -INT "${pids[0]}" "${pids[1]}"
wait "${pids[0]}" "${pids[1]}" 2>/dev/null || true
pids=("${pids[2]}")
ls -l "$out"/router-*.pcapng
