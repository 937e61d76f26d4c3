#!/usr/bin/env python3
"""Writes testdata/rotated/: one capture of mixed traffic, rotated every 97 records into
pcap files (rot-000.pcap, ...), whose conversations span files. Made for the distributed
split's tests (its outputs must equal one machine's), so it holds what a partition must get
right:

  - TCP connections that start, carry data and close across file boundaries, interleaved;
  - a reused TCP tuple: 192.0.2.7:40000 -> 198.51.100.1:443 opened three times with new
    initial sequence numbers (Wireshark numbers three streams), and a retransmitted SYN;
  - UDP queries, also over IPv6;
  - fragmented UDP datagrams sent last fragment first (the first fragment comes a few records
    later, sometimes in the next file), and a fragment whose first fragment never comes;
  - ICMP port-unreachable errors from a router (203.0.113.1) quoting UDP and TCP packets,
    two of them before any packet of the conversation they quote;
  - VXLAN (outer 203.0.113.10 -> 203.0.113.20:4789, one outer UDP conversation carrying
    several inner TCP connections, and one outer conversation per inner flow for others);
  - ARP frames (no IP).

Documentation addresses only. Deterministic: run from anywhere,
python3 testdata/make_rotated.py.
"""
import os
import random
import struct

from make_testdata import ACK, FIN, PSH, SYN, csum, eth, ipv4, tcp, udp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "rotated")
T0 = 1_700_000_000
ROTATE = 97

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def frame(payload, ethertype=0x0800):
    return eth(MAC_B, MAC_A, ethertype, payload)


def tcp_pkt(src, dst, sp, dp, seq, ack, fl, data=b"", ident=0):
    return frame(ipv4(src, dst, 6, tcp(src, dst, sp, dp, seq, ack, fl, data), ident))


def udp_pkt(src, dst, sp, dp, data, ident=0):
    return frame(ipv4(src, dst, 17, udp(src, dst, sp, dp, data), ident))


def udp6_pkt(src, dst, sp, dp, data):
    u = udp(src, dst, sp, dp, data, v6=True)
    hdr = struct.pack("!IHBB", 6 << 28, len(u), 17, 64) + src + dst
    return frame(hdr + u, 0x86DD)


def fragments(src, dst, sp, dp, data, ident):
    """The IPv4 fragments of one UDP datagram (payload split in 3), last one first."""
    body = udp(src, dst, sp, dp, data)
    cut = [0, 16, 32, len(body)]
    frags = []
    for k in range(3):
        piece = body[cut[k]:cut[k + 1]]
        more = 0x2000 if k < 2 else 0
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), ident,
                          more | (cut[k] // 8), 64, 17, 0, src, dst)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        frags.append(frame(hdr + piece))
    return list(reversed(frags))


def icmp_unreachable(router, to, quoted_ip):
    body = struct.pack("!BBHI", 3, 3, 0, 0) + quoted_ip[:28]
    c = csum(body)
    body = body[:2] + struct.pack("!H", c) + body[4:]
    return frame(ipv4(router, to, 1, body, 0))


def vxlan(outer_sport, inner_frame):
    vx = struct.pack("!II", 0x08000000, 42 << 8) + inner_frame
    return frame(ipv4(ip4("203.0.113.10"), ip4("203.0.113.20"), 17,
                      udp(ip4("203.0.113.10"), ip4("203.0.113.20"), outer_sport, 4789, vx), 0))


def arp():
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + ip4("192.0.2.1") + bytes(6) + ip4("192.0.2.254")
    return frame(body, 0x0806)


def connection(rng, t, client, server, cport, sport, isn, rounds, wrap=lambda f: f):
    """(time, frame) of one TCP connection from t, its segments some ms apart."""
    out = []
    s_isn = isn ^ 0x5A5A5A5A
    c, s = isn, s_isn

    def at(f):
        nonlocal t
        t += rng.randint(1, 40) * 1_000_000
        out.append((t, wrap(f)))

    at(tcp_pkt(client, server, cport, sport, c, 0, SYN))
    at(tcp_pkt(server, client, sport, cport, s, c + 1, SYN | ACK))
    c, s = c + 1, s + 1
    at(tcp_pkt(client, server, cport, sport, c, s, ACK))
    for _ in range(rounds):
        q = bytes(rng.randrange(256) for _ in range(rng.randint(20, 200)))
        at(tcp_pkt(client, server, cport, sport, c, s, PSH | ACK, q))
        c += len(q)
        a = bytes(rng.randrange(256) for _ in range(rng.randint(20, 600)))
        at(tcp_pkt(server, client, sport, cport, s, c, PSH | ACK, a))
        s += len(a)
    at(tcp_pkt(client, server, cport, sport, c, s, FIN | ACK))
    at(tcp_pkt(server, client, sport, cport, s, c + 1, FIN | ACK))
    at(tcp_pkt(client, server, cport, sport, c + 1, s + 1, ACK))
    return out


def traffic():
    rng = random.Random(27)
    ms = 1_000_000
    events = []
    servers = [ip4(f"198.51.100.{n}") for n in (1, 2, 3, 4, 5)]
    for k in range(40):
        client = ip4(f"192.0.2.{10 + k % 20}")
        start = rng.randint(0, 20_000) * ms
        events += connection(rng, start, client, rng.choice(servers), 41000 + k,
                             rng.choice((80, 443)), rng.getrandbits(32), rng.randint(1, 6))
    # One tuple reused three times, the first SYN retransmitted.
    reuse = (ip4("192.0.2.7"), ip4("198.51.100.1"), 40000, 443)
    for n, start in enumerate((1_000, 9_000, 17_000)):
        conn = connection(rng, start * ms, *reuse, 0x1000_0000 * (n + 1), 2)
        if n == 0:
            conn.insert(1, (conn[0][0] + ms // 2, conn[0][1]))
        events += conn
    # UDP queries, IPv4 and IPv6.
    for k in range(60):
        t = rng.randint(0, 21_000) * ms
        client = ip4(f"192.0.2.{30 + k % 8}")
        q = bytes(rng.randrange(256) for _ in range(40))
        events.append((t, udp_pkt(client, ip4("198.51.100.53"), 50000 + k % 13, 53, q)))
        events.append((t + 2 * ms, udp_pkt(ip4("198.51.100.53"), client, 53, 50000 + k % 13, q * 2)))
    for k in range(12):
        t = rng.randint(0, 21_000) * ms
        a = bytes.fromhex("20010db8000000000000000000000001")
        b = bytes.fromhex("20010db8000000000000000000000053")
        events.append((t, udp6_pkt(a, b, 52000 + k % 3, 53, b"q" * 30)))
    # Fragmented datagrams, last fragment first; one whose first fragment is lost.
    for k in range(25):
        t = rng.randint(0, 21_000) * ms
        src, dst = ip4(f"192.0.2.{50 + k % 4}"), ip4("198.51.100.77")
        frags = fragments(src, dst, 33000 + k % 5, 7000, bytes(rng.randrange(256) for _ in range(60)), 900 + k)
        gap = rng.choice((1, 3, 30))
        events += [(t + i * gap * ms, f) for i, f in enumerate(frags)]
    lost = fragments(ip4("192.0.2.60"), ip4("198.51.100.77"), 33999, 7000, b"x" * 60, 4242)
    events += [(5_000 * ms, lost[0]), (5_001 * ms, lost[1])]
    # ICMP errors quoting UDP and TCP packets; two before their conversation's first packet.
    router = ip4("203.0.113.1")
    for k in range(10):
        t = rng.randint(0, 21_000) * ms
        client = ip4(f"192.0.2.{70 + k % 3}")
        q = udp(client, ip4("198.51.100.99"), 34000 + k, 9999, b"probe")
        qip = ipv4(client, ip4("198.51.100.99"), 17, q, 77)
        events.append((t, udp_pkt(client, ip4("198.51.100.99"), 34000 + k, 9999, b"probe", 77)))
        events.append((t + ms, icmp_unreachable(router, client, qip)))
    early_udp = ipv4(ip4("192.0.2.80"), ip4("198.51.100.99"), 17,
                     udp(ip4("192.0.2.80"), ip4("198.51.100.99"), 35000, 9999, b"early"), 5)
    events.append((3_000 * ms, icmp_unreachable(router, ip4("192.0.2.80"), early_udp)))
    events.append((15_000 * ms, udp_pkt(ip4("192.0.2.80"), ip4("198.51.100.99"), 35000, 9999, b"late")))
    early_tcp = ipv4(ip4("192.0.2.81"), ip4("198.51.100.2"), 6,
                     tcp(ip4("192.0.2.81"), ip4("198.51.100.2"), 36000, 443, 555, 0, SYN), 6)
    events.append((2_000 * ms, icmp_unreachable(router, ip4("192.0.2.81"), early_tcp)))
    events += connection(rng, 12_000 * ms, ip4("192.0.2.81"), ip4("198.51.100.2"), 36000, 443, 555, 2)
    # VXLAN: one outer conversation carrying three inner connections, and three of their own.
    inner = lambda f: eth(MAC_A, MAC_B, 0x0800, f[14:])
    for k in range(6):
        sport = 49152 if k < 3 else 49200 + k
        wrap = lambda f, sport=sport: vxlan(sport, inner(f))
        events += connection(rng, rng.randint(0, 18_000) * ms, ip4(f"192.0.2.{100 + k}"),
                             ip4("198.51.100.100"), 42000 + k, 443, rng.getrandbits(32), 2, wrap)
    for k in range(8):
        events.append((rng.randint(0, 21_000) * ms, arp()))
    events.sort(key=lambda e: e[0])
    return events


def write(path, packets):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ns, fr in packets:
            f.write(struct.pack("<IIII", T0 + ns // 1_000_000_000, (ns % 1_000_000_000) // 1000, len(fr), len(fr)))
            f.write(fr)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    events = traffic()
    for n in range(0, len(events), ROTATE):
        write(os.path.join(OUT, f"rot-{n // ROTATE:03}.pcap"), events[n:n + ROTATE])


if __name__ == "__main__":
    main()
