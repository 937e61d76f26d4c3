"""A longer cable: forwards every frame between two interfaces after a fixed delay.

The kernel here has no sch_netem, so this stands in for `tc qdisc ... netem delay`. It runs in a
namespace of its own that only bridges its two veth ends (no IP, no TTL decrement), and should be
started with `chrt -f 20` so a busy neighbour adds little jitter.

Usage: delay_line.py IFACE_A IFACE_B DELAY_MS
"""
import heapq
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

a, b, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000.0
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
            heapq.heappush(queue, (time.monotonic() + delay, seq, peer[s], frame))
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, out, frame = heapq.heappop(queue)
        try:
            out.send(frame)
        except OSError:
            pass  # a frame larger than the MTU (offload) cannot happen on a forwarded path
