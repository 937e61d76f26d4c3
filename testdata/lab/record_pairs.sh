#!/usr/bin/env bash
# Records TLS traffic at two points of one path across a middlebox, for the tests and the demo of
# `tracekit analyze`: a capture on the client host and one on the server host, both taken at once
# (one kernel clock, so their true clock offset is zero).
#
#   cli 192.0.2.10 ─ delay line (2 ms each way) ─ r1 ─ r2 ─ mb ─ srv 198.51.100.20
#
# cli has initial TTL 128 and asks for ECN; srv has TTL 64 and TSO on (as a Windows/Linux host
# capturing its own traffic would); r1 and r2 are plain routers; mb is the middlebox of the
# scenario, its server-side MAC has Check Point's OUI (00:1c:7f). Scenarios (the truth that the
# tests check):
#   firewall  mb is haproxy, transparent (TPROXY, `usesrc client`: same addresses and ports),
#             TTL 255, no ECN, small window scale; it terminates TCP on both sides and closes both
#             right after the server's Server Hello on port 443 (as in the story told
#             in docs/story.md), and lets TLS on port 4433 through. Steps: UDP query, failed TLS
#             from port 53695, TLS on 4433 that works, UDP, failed TLS from port 53712, UDP.
#   nat       mb is a router doing source NAT with random ports (SNAT --random-fully).
#   clamp     mb is a router that clamps the MSS to 1200 and removes ECN setup flags.
#   intercept mb is haproxy as above (transparent, TTL 255), but it terminates TLS too: it
#             answers the client's ClientHello with its own certificate and opens its own TLS
#             session to the server (new random values on each side). Both connections work.
#   reset     mb is a router (TTL 255) that answers a ClientHello naming blocked.example with a
#             forged TCP reset and drops it; a second connection (port 4433, other name) works.
#   scramble  mb is a plain router; the delay line is also a transparent TCP normalizer (no hop):
#             it adds a constant to the client's sequence numbers (and takes it off the server's
#             acknowledgements), gives every IPv4 packet a new IP ID, and overwrites the
#             timestamps option of the client's SYN with NOPs. Two TLS connections that work.
#   close     mb is a plain router (as in clamp); the server on port 8443 answers one request,
#             and when the client closes (FIN, no close_notify) it still sends its close_notify
#             (24 bytes) and closes at once; the client's closed socket answers with a RST, and
#             the server's FIN reaches the client just after it. A normal (abortive) close: two
#             connections (53695, 53700) that work, nothing between but routers.
#   closenat  the same close behind mb doing source NAT (as in nat).
#   synproxy  mb is a router (TTL 255) with iptables SYNPROXY on port 443 (the DDoS protection of
#             many firewalls): it answers the client's SYN itself with a SYN cookie, opens the
#             server side only after the client's ACK, then splices the two, translating the
#             server's sequence numbers; data segments are forwarded one for one. Two TLS
#             connections (53695, 53700) that work.
#   strip     mb is a router that strips the SACK-permitted and timestamps options from every TCP
#             segment in both directions (iptables TCPOPTSTRIP, as some firewalls do). Two TLS
#             connections that work.
# Documentation addresses only; everything is torn down on exit.
#
# Usage (as root): testdata/lab/record_pairs.sh OUTDIR [SCENARIO...]
# Needs: ip, iptables, ethtool, haproxy, openssl, python3, dumpcap
#   (apt-get install iproute2 iptables ethtool haproxy openssl python3 tshark).
# Writes OUTDIR/SCENARIO-client.pcapng and OUTDIR/SCENARIO-server.pcapng.
set -euo pipefail
out=$(realpath "${1:?usage: $0 OUTDIR [firewall|nat|clamp|intercept|reset|scramble|strip|close|closenat|synproxy]...}")
shift
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(firewall nat clamp intercept reset scramble strip close closenat synproxy)
for tool in ip iptables ethtool haproxy openssl python3 dumpcap chrt; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
mkdir -p "$out"
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
ns="tk-$$"
names=(cli dl r1 r2 mb srv)
pids=()
teardown() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  for n in "${names[@]}"; do ip netns del "$ns-$n" 2>/dev/null || true; done
}
trap 'teardown; rm -rf "$work"' EXIT INT TERM

openssl req -x509 -newkey rsa:3072 -nodes -days 2 -subj "/CN=server.example" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=inspection.example" \
  -keyout "$work/mb-key.pem" -out "$work/mb-cert.pem" 2>/dev/null
cat "$work/mb-cert.pem" "$work/mb-key.pem" > "$work/mb.pem"

# Background processes are started with `ip netns exec` itself (not through this function), so
# that their pid is the process to signal.
x() { local n=$1; shift; ip netns exec "$ns-$n" "$@"; }

topology() {
  for n in "${names[@]}"; do ip netns add "$ns-$n"; ip -n "$ns-$n" link set lo up; done
  ip link add c0 netns "$ns-cli" type veth peer d0 netns "$ns-dl"
  ip link add d1 netns "$ns-dl" type veth peer r1a netns "$ns-r1"
  ip link add r1b netns "$ns-r1" type veth peer r2a netns "$ns-r2"
  ip link add r2b netns "$ns-r2" type veth peer mba netns "$ns-mb"
  ip link add mbb netns "$ns-mb" type veth peer s0 netns "$ns-srv"
  ip -n "$ns-mb" link set mbb address 00:1c:7f:3a:00:02
  ip -n "$ns-cli" addr add 192.0.2.10/24 dev c0
  ip -n "$ns-r1" addr add 192.0.2.1/24 dev r1a
  ip -n "$ns-r1" addr add 203.0.113.1/30 dev r1b
  ip -n "$ns-r2" addr add 203.0.113.2/30 dev r2a
  ip -n "$ns-r2" addr add 203.0.113.5/30 dev r2b
  ip -n "$ns-mb" addr add 203.0.113.6/30 dev mba
  ip -n "$ns-mb" addr add 198.51.100.1/24 dev mbb
  ip -n "$ns-srv" addr add 198.51.100.20/24 dev s0
  for l in "cli c0" "dl d0" "dl d1" "r1 r1a" "r1 r1b" "r2 r2a" "r2 r2b" "mb mba" "mb mbb" "srv s0"; do
    set -- $l; ip -n "$ns-$1" link set "$2" up
  done
  ip -n "$ns-cli" route add default via 192.0.2.1
  ip -n "$ns-r1" route add default via 203.0.113.2
  ip -n "$ns-r2" route add 192.0.2.0/24 via 203.0.113.1
  ip -n "$ns-r2" route add default via 203.0.113.6
  ip -n "$ns-mb" route add 192.0.2.0/24 via 203.0.113.5
  ip -n "$ns-srv" route add default via 198.51.100.1
  for n in r1 r2 mb; do x "$n" sysctl -qw net.ipv4.ip_forward=1; done
  # The delay line forwards raw frames: the frames it sees must carry finished checksums and no
  # offload-sized segments.
  x cli ethtool -K c0 tx off >/dev/null
  x r1 ethtool -K r1a tx off >/dev/null
  x cli sysctl -qw net.ipv4.ip_default_ttl=128 net.ipv4.tcp_ecn=1
  x cli sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432"
  x srv sysctl -qw net.ipv4.tcp_rmem="4096 131072 16777216"
  ip netns exec "$ns-dl" chrt -f 20 python3 "$here/delay_line.py" d0 d1 2 "${dl_args[@]}" & pids+=($!)
}

services() {
  ip netns exec "$ns-srv" python3 "$here/lab_server.py" & pids+=($!)
  ip netns exec "$ns-srv" python3 "$here/tls_close_server.py" 8443 "$work/cert.pem" \
    "$work/key.pem" & pids+=($!)
  for port in 443 4433; do
    ip netns exec "$ns-srv" openssl s_server -quiet -www -accept "$port" -cert "$work/cert.pem" \
      -key "$work/key.pem" </dev/null >/dev/null 2>&1 & pids+=($!)
  done
}

haproxy_defaults() {
  printf '%s\n' global '  maxconn 100' defaults '  mode tcp' '  timeout connect 2s' \
    '  timeout client 5s' '  timeout server 5s'
}

tproxy() {
  x mb sysctl -qw net.ipv4.ip_default_ttl=255 net.ipv4.tcp_ecn=0
  x mb sysctl -qw net.ipv4.tcp_rmem="4096 16384 65536"
  x mb iptables -t mangle -N DIVERT
  x mb iptables -t mangle -A PREROUTING -p tcp -m socket -j DIVERT
  x mb iptables -t mangle -A DIVERT -j MARK --set-mark 1
  x mb iptables -t mangle -A DIVERT -j ACCEPT
  x mb iptables -t mangle -A PREROUTING -i mba -p tcp --dport 443 \
    -j TPROXY --tproxy-mark 0x1/0x1 --on-port 8443
  x mb iptables -t mangle -A PREROUTING -i mba -p tcp --dport 4433 \
    -j TPROXY --tproxy-mark 0x1/0x1 --on-port 8444
  x mb ip rule add fwmark 1 lookup 100
  x mb ip route add local 0.0.0.0/0 dev lo table 100
}

firewall() {
  tproxy
  { haproxy_defaults; cat <<'EOF'; } >"$work/haproxy.cfg"
frontend inspected
  bind 0.0.0.0:8443 transparent
  default_backend tls_inspected
frontend passed
  bind 0.0.0.0:8444 transparent
  default_backend tls_passed
backend tls_inspected
  source 0.0.0.0 usesrc client
  tcp-response inspect-delay 2s
  tcp-response content reject if { res.ssl_hello_type 2 }
  server srv 198.51.100.20:443
backend tls_passed
  source 0.0.0.0 usesrc client
  server srv 198.51.100.20:4433
EOF
  ip netns exec "$ns-mb" haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & pids+=($!)
  steps=(udp:4000:query-one.example tls:443:53695 sleep:0.3 tls:4433:53700
         udp:4000:query-two.example sleep:0.3 tls:443:53712 udp:4000:query-three.example)
}

intercept() {
  tproxy
  { haproxy_defaults; cat <<EOF; } >"$work/haproxy.cfg"
frontend inspected
  bind 0.0.0.0:8443 transparent ssl crt $work/mb.pem
  default_backend tls_reencrypted
backend tls_reencrypted
  source 0.0.0.0 usesrc client
  server srv 198.51.100.20:443 ssl verify none
EOF
  ip netns exec "$ns-mb" haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & pids+=($!)
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example sleep:0.3
         tls:443:53700 udp:4000:query-three.example)
}

nat() {
  x mb iptables -t nat -A POSTROUTING -o mbb -p tcp -j SNAT --to-source 198.51.100.1 --random-fully
  x mb iptables -t nat -A POSTROUTING -o mbb -p udp -j SNAT --to-source 198.51.100.1 --random-fully
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example tls:4433:53700)
}

clamp() {
  x mb iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200
  x mb iptables -t mangle -A FORWARD -p tcp -j ECN --ecn-tcp-remove
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example)
}

scramble() {
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example tls:4433:53700)
}

close() {
  steps=(udp:4000:query-one.example close:8443:53695 udp:4000:query-two.example
         close:8443:53700 udp:4000:query-three.example)
}

closenat() {
  x mb iptables -t nat -A POSTROUTING -o mbb -p tcp -j SNAT --to-source 198.51.100.1 --random-fully
  x mb iptables -t nat -A POSTROUTING -o mbb -p udp -j SNAT --to-source 198.51.100.1 --random-fully
  close
}

synproxy() {
  x mb sysctl -qw net.ipv4.ip_default_ttl=255 net.netfilter.nf_conntrack_tcp_loose=0
  x mb iptables -t raw -A PREROUTING -i mba -p tcp --syn --dport 443 -j CT --notrack
  x mb iptables -A FORWARD -i mba -p tcp --dport 443 -m state --state INVALID,UNTRACKED \
    -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460
  x mb iptables -A FORWARD -m state --state INVALID -j DROP
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example tls:443:53700)
}

strip() {
  x mb iptables -t mangle -A FORWARD -p tcp -j TCPOPTSTRIP --strip-options sack-permitted,timestamp
  steps=(udp:4000:query-one.example tls:443:53695 udp:4000:query-two.example tls:4433:53700)
}

reset() {
  x mb sysctl -qw net.ipv4.ip_default_ttl=255
  x mb iptables -A FORWARD -p tcp --dport 443 -m string --string blocked.example --algo bm \
    -j REJECT --reject-with tcp-reset
  steps=(udp:4000:query-one.example tls:443:53695:blocked.example sleep:0.3
         tls:4433:53700:server.example udp:4000:query-two.example)
}

for scenario in "${scenarios[@]}"; do
  case $scenario in firewall|nat|clamp|intercept|reset|scramble|strip|close|closenat|synproxy) ;; *) echo "unknown scenario $scenario" >&2; exit 2;; esac
  dl_args=()
  [ "$scenario" != scramble ] || dl_args=(--scramble)
  topology
  "$scenario"
  services
  ip netns exec "$ns-cli" dumpcap -q -i c0 -s 0 -w "$work/client.pcapng" 2>/dev/null & cap1=$!
  ip netns exec "$ns-srv" dumpcap -q -i s0 -s 0 -w "$work/server.pcapng" 2>/dev/null & cap2=$!
  sleep 2
  x cli python3 "$here/tls_client.py" 198.51.100.20 "${steps[@]}"
  sleep 1
  kill -INT "$cap1" "$cap2"
  wait "$cap1" "$cap2" 2>/dev/null || true
  teardown
  mv "$work/client.pcapng" "$out/$scenario-client.pcapng"
  mv "$work/server.pcapng" "$out/$scenario-server.pcapng"
  ls -l "$out/$scenario"-*.pcapng
done
