"""A longer cable: forwards every frame between two interfaces after a fixed delay.

The kernel here has no sch_netem, so this stands in for `tc qdisc ... netem delay`. It runs in a
namespace of its own that only bridges its two veth ends (no IP, no TTL decrement), and should be
started with `chrt -f 20` so a busy neighbour adds little jitter.

With --scramble it is also a transparent TCP normalizer of the kind some firewalls put in
bridge mode (e.g. "TCP sequence number randomization"): on IPv4 TCP it adds a constant to the
sequence numbers going from A to B (and takes it off the acknowledgement numbers and SACK edges
coming back), gives every IPv4 packet a new IP ID, and overwrites the timestamps option of SYNs
from A with NOPs, so that neither end uses timestamps. Checksums are recomputed.

Usage: delay_line.py IFACE_A IFACE_B DELAY_MS [--scramble]
"""
import heapq
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

a, b, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000.0
scramble = "--scramble" in sys.argv[4:]
SEQ_OFFSET = 0x5EC0FF5E
ip_ids = iter(range(1, 1 << 62))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rewrite(frame, a_to_b):
    """The frame as the normalizer sends it on (IPv4 in Ethernet II only; others unchanged)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    f = bytearray(frame)
    ihl = (f[14] & 0x0F) * 4
    total = struct.unpack_from("!H", f, 16)[0]
    new_id = (next(ip_ids) * 40503) & 0xFFFF or 1
    struct.pack_into("!H", f, 18, new_id)
    t = 14 + ihl
    if f[23] == 6 and len(f) >= t + 20 and 14 + total <= len(f):
        seq, ack = struct.unpack_from("!II", f, t + 4)
        flags = f[t + 13]
        if a_to_b:
            struct.pack_into("!I", f, t + 4, (seq + SEQ_OFFSET) & 0xFFFFFFFF)
        elif flags & 0x10:
            struct.pack_into("!I", f, t + 8, (ack - SEQ_OFFSET) & 0xFFFFFFFF)
        end = t + (f[t + 12] >> 4) * 4
        i = t + 20
        while i < end:
            kind = f[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            length = f[i + 1] if i + 1 < end else 0
            if length < 2 or i + length > end:
                break
            if kind == 8 and a_to_b and flags & 0x02:
                f[i:i + length] = b"\x01" * length
            elif kind == 5 and not a_to_b:
                for edge in range(i + 2, i + length - 3, 4):
                    v = struct.unpack_from("!I", f, edge)[0]
                    struct.pack_into("!I", f, edge, (v - SEQ_OFFSET) & 0xFFFFFFFF)
            i += length
        struct.pack_into("!H", f, t + 16, 0)
        segment = bytes(f[t:14 + total])
        pseudo = bytes(f[26:34]) + struct.pack("!BBH", 0, 6, len(segment))
        struct.pack_into("!H", f, t + 16, checksum(pseudo + segment))
    struct.pack_into("!H", f, 24, 0)
    struct.pack_into("!H", f, 24, checksum(bytes(f[14:14 + ihl])))
    return bytes(f)

socks = {}
for name in (a, b):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setblocking(False)
    socks[name] = s
peer = {socks[a]: socks[b], socks[b]: socks[a]}
queue = []  # (due, sequence, socket to send on, frame)
seq = 0
while True:
    timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
    ready, _, _ = select.select(list(peer), [], [], timeout)
    for s in ready:
        while True:
            try:
                frame, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:  # our own transmissions, seen again
                continue
            seq += 1
            if scramble:
                frame = rewrite(frame, s is socks[a])
            heapq.heappush(queue, (time.monotonic() + delay, seq, peer[s], frame))
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, out, frame = heapq.heappop(queue)
        try:
            out.send(frame)
        except OSError:
            pass  # a frame larger than the MTU (offload) cannot happen on a forwarded path
