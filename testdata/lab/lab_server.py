"""Lab server: a TCP request/response service on port 8080 and a UDP one on port 4000."""
import socket
import threading


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 4000))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(b"answer:" + data[::-1], peer)


def tcp():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080))
    s.listen()
    while True:
        c, _ = s.accept()
        with c:
            while True:
                req = c.recv(4096)
                if not req:
                    break
                n = int(req.split(b" ")[1])
                body = bytes((i * 7 + n) % 251 for i in range(n))
                c.sendall(b"OK %d\n" % n + body)


threading.Thread(target=udp, daemon=True).start()
tcp()
