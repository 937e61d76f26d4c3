"""Lab client: five TCP request/response rounds, then two UDP queries."""
import socket
import sys
import time

server = sys.argv[1]
c = socket.create_connection((server, 8080))
for i, n in enumerate([300, 1200, 4000, 700, 9000]):
    c.sendall(b"GET %d round-%d " % (n, i) + b"x" * (40 + i * 13))
    want = len(b"OK %d\n" % n) + n
    got = 0
    while got < want:
        got += len(c.recv(65536))
    time.sleep(0.02)
c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
for q in [b"query-one.example", b"query-two.example.org"]:
    u.sendto(q, (server, 4000))
    u.recvfrom(2048)
    time.sleep(0.01)
