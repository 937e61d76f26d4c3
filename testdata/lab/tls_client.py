"""Lab TLS client: runs a list of steps against one server, in order.

Steps:
  tls:PORT:SRCPORT[:SNI]  a TLS connection from a fixed source port (as in the story, where the
                          failed connection's client port was known); on success it sends an HTTP
                          request, reads the answer and closes; on failure it closes at once.
  close:PORT:SRCPORT      a TLS connection that reads the fixed-size answer of
                          tls_close_server.py and closes at once, without a close_notify: the
                          server's close_notify then meets a closed socket (an abortive close).
  udp:PORT:TEXT           one UDP query and its answer (forwarded, not proxied: the clock
                          alignment's reference in both directions).
  sleep:SECONDS

Usage: tls_client.py SERVER STEP...
"""
import socket
import ssl
import sys
import time

server = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

for step in sys.argv[2:]:
    kind, *args = step.split(":")
    if kind == "sleep":
        time.sleep(float(args[0]))
    elif kind == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.sendto(args[1].encode(), (server, int(args[0])))
        try:
            u.recvfrom(2048)
        except OSError as e:
            print(f"udp {args[0]}: {e}", file=sys.stderr)
        u.close()
    elif kind == "tls":
        port, sport = int(args[0]), int(args[1])
        sni = args[2] if len(args) > 2 else "server.example"
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(("0.0.0.0", sport))
        raw.settimeout(5)
        try:
            raw.connect((server, port))
            with ctx.wrap_socket(raw, server_hostname=sni) as t:
                t.sendall(b"GET / HTTP/1.0\r\nHost: " + sni.encode() + b"\r\n\r\n")
                while t.recv(65536):
                    pass
            print(f"tls {port} from {sport}: ok", file=sys.stderr)
        except (OSError, ssl.SSLError) as e:
            print(f"tls {port} from {sport}: failed: {e}", file=sys.stderr)
        finally:
            raw.close()
    elif kind == "close":
        port, sport = int(args[0]), int(args[1])
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(("0.0.0.0", sport))
        raw.settimeout(5)
        try:
            raw.connect((server, port))
            t = ctx.wrap_socket(raw, server_hostname="server.example")
            t.sendall(b"GET / HTTP/1.0\r\nHost: server.example\r\n\r\n")
            want, got = 1000 + len(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n"), 0
            while got < want:
                chunk = t.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
            # Everything read, so the kernel sends a FIN (not a RST) on close.
            raw.close()
            print(f"close {port} from {sport}: {got} bytes, closed", file=sys.stderr)
        except (OSError, ssl.SSLError) as e:
            print(f"close {port} from {sport}: failed: {e}", file=sys.stderr)
            raw.close()
    else:
        sys.exit(f"unknown step {step}")
