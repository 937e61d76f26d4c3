#!/usr/bin/env python3
"""Writes the project's own small test captures (documentation addresses only).

  handshake.pcap        Ethernet/IPv4 TCP connection to port 443: SYN (MSS, SACK-perm, TS, wscale),
                        SYN-ACK, ACK, TLS ClientHello, ServerHello, FIN/ACK both ways. pcap, µs.
  handshake-ns.pcap     the same packets in a nanosecond pcap, with sub-µs timestamps.
  mixed.pcapng          two interfaces (Ethernet µs named "eth0", raw IP ns named "tun0"), packet
                        comments and flags, 802.1Q VLAN, IPv6/UDP DNS, ICMP echo, ARP, a
                        snaplen-truncated packet, a name-resolution block and an ISB.
  handshake.pcap.gz     handshake.pcap compressed with gzip.

Run from anywhere: python3 testdata/make_testdata.py. Output is deterministic.
"""
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z

CLIENT_MAC = bytes.fromhex("020000000001")
FW_MAC = bytes.fromhex("001c7f000002")  # Check Point OUI 00:1c:7f
CLIENT = bytes([192, 0, 2, 10])
SERVER = bytes([198, 51, 100, 20])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident, ttl=64, tos=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, 0x4000, ttl, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b"", window=64240):
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def udp(src, dst, sport, dport, payload, v6=False):
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", 8 + len(payload), 17)
    else:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", c) + payload


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def tls_record(content_type, body):
    return struct.pack("!BHH", content_type, 0x0303, len(body)) + body


def hello(msg_type, random, extra):
    body = struct.pack("!H", 0x0303) + random + b"\x00" + extra
    return struct.pack("!B", msg_type) + len(body).to_bytes(3, "big") + body


SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08


def handshake_packets():
    """(time offset in ns, frame) for one TLS connection seen at the client."""
    c_isn, s_isn = 1_000_000, 2_000_000
    cp, sp = 51000, 443
    syn_opts = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01" "030307")
    synack_opts = bytes.fromhex("020405b4" "0402" "080a0000000200000001" "01" "030307")
    client_hello = tls_record(22, hello(1, bytes(range(32)), b"\x00\x02\x13\x01\x01\x00\x00\x00"))
    server_hello = tls_record(22, hello(2, bytes(range(32, 64)), b"\x13\x01\x00\x00\x00"))
    c2s = lambda seq, ack, fl, pl=b"", opt=b"", ident=1: eth(FW_MAC, CLIENT_MAC, 0x0800, ipv4(CLIENT, SERVER, 6, tcp(CLIENT, SERVER, cp, sp, seq, ack, fl, pl, opt), ident, ttl=64, tos=0))
    s2c = lambda seq, ack, fl, pl=b"", opt=b"", ident=1: eth(CLIENT_MAC, FW_MAC, 0x0800, ipv4(SERVER, CLIENT, 6, tcp(SERVER, CLIENT, sp, cp, seq, ack, fl, pl, opt), ident, ttl=56))
    return [
        (0, c2s(c_isn, 0, SYN, opt=syn_opts, ident=100)),
        (3_622_000, s2c(s_isn, c_isn + 1, SYN | ACK, opt=synack_opts, ident=0)),
        (3_700_000, c2s(c_isn + 1, s_isn + 1, ACK, ident=101)),
        (4_100_000, c2s(c_isn + 1, s_isn + 1, PSH | ACK, client_hello, ident=102)),
        (8_000_000, s2c(s_isn + 1, c_isn + 1 + len(client_hello), PSH | ACK, server_hello, ident=1)),
        (8_390_000, s2c(s_isn + 1 + len(server_hello), c_isn + 1 + len(client_hello), FIN | ACK, ident=2)),
        (8_500_000, c2s(c_isn + 1 + len(client_hello), s_isn + 2 + len(server_hello), FIN | ACK, ident=103)),
    ]


def pcap(path, packets, nanos=False, extra_ns=0):
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, 1))
        for i, (dt, frame) in enumerate(packets):
            ns = dt + (i * extra_ns)
            frac = ns % 1_000_000_000 if nanos else (ns % 1_000_000_000) // 1000
            f.write(struct.pack("<IIII", T0 + ns // 1_000_000_000, frac, len(frame), len(frame)))
            f.write(frame)


def block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def option(code, value):
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


END = b"\0\0\0\0"


def pcapng(path):
    out = []
    shb_opts = option(2, b"tracekit testdata") + option(3, b"Linux") + option(4, b"make_testdata.py") + END
    out.append(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts))
    out.append(block(1, struct.pack("<HHI", 1, 0, 262144) + option(2, b"eth0") + option(3, b"client LAN") + END))
    out.append(block(1, struct.pack("<HHI", 101, 0, 96) + option(2, b"tun0") + option(9, b"\x09") + END))
    dns_q = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    v6src = bytes.fromhex("20010db8000000000000000000000001")
    v6dst = bytes.fromhex("20010db8000000000000000000000035")
    v6udp = udp(v6src, v6dst, 40000, 53, dns_q, v6=True)
    ipv6 = struct.pack("!IHBB", 0x60000000, len(v6udp), 17, 64) + v6src + v6dst + v6udp
    icmp_body = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping" * 8
    icmp_body = icmp_body[:2] + struct.pack("!H", csum(icmp_body)) + icmp_body[4:]
    ping = ipv4(CLIENT, SERVER, 1, icmp_body, 7)
    vlan = eth(FW_MAC, CLIENT_MAC, 0x8100, struct.pack("!HH", 42, 0x0800) + ping)
    arp = eth(b"\xff" * 6, CLIENT_MAC, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + CLIENT_MAC + CLIENT + b"\0" * 6 + SERVER)
    big = ipv4(CLIENT, SERVER, 17, udp(CLIENT, SERVER, 5000, 5001, bytes(200)), 9)
    us = lambda sec_ns: sec_ns // 1000
    packets = [
        (0, us(0), eth(FW_MAC, CLIENT_MAC, 0x86DD, ipv6), option(1, b"IPv6 DNS query") + option(2, struct.pack("<I", 1)) + END),
        (0, us(1_000_000), vlan, option(1, b"VLAN 42 echo request") + END),
        (0, us(2_000_000), arp, b""),
        (1, T0 * 10**9 + 2_500_000_123, big[:96], option(2, struct.pack("<I", 2)) + END),
    ]
    for iface, ts, frame, opts in packets:
        if iface == 0:
            ts = T0 * 10**6 + ts
        orig = len(big) if iface == 1 else len(frame)
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame), orig) + frame
        body += b"\0" * (-len(body) % 4) + opts
        out.append(block(6, body))
    nrb = struct.pack("<HH", 1, 4 + 12) + SERVER + b"example.com\0" + struct.pack("<HH", 0, 0)
    out.append(block(4, nrb))
    isb_ts = (T0 + 3) * 10**6
    out.append(block(5, struct.pack("<III", 0, isb_ts >> 32, isb_ts & 0xFFFFFFFF) + option(4, struct.pack("<Q", 3)) + option(5, struct.pack("<Q", 0)) + END))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def main():
    pkts = handshake_packets()
    pcap(os.path.join(HERE, "handshake.pcap"), pkts)
    pcap(os.path.join(HERE, "handshake-ns.pcap"), pkts, nanos=True, extra_ns=123)
    pcapng(os.path.join(HERE, "mixed.pcapng"))
    with open(os.path.join(HERE, "handshake.pcap"), "rb") as src:
        data = src.read()
    with gzip.GzipFile(os.path.join(HERE, "handshake.pcap.gz"), "wb", mtime=0) as gz:
        gz.write(data)


if __name__ == "__main__":
    main()
