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
    elif kind in ("tls", "close"):
        port, sport = int(args[0]), int(args[1])
        sni = args[2] if len(args) > 2 else "server.example"
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(("0.0.0.0", sport))
        raw.settimeout(5)
        try:
            raw.connect((server, port))
            t = ctx.wrap_socket(raw, server_hostname=sni)
            t.sendall(b"GET / HTTP/1.0\r\nHost: " + sni.encode() + b"\r\n\r\n")
            # tls: read to the end; close: read the fixed-size answer of tls_close_server.py
            # only, so that the kernel sends a FIN (not a RST) on close, and close at once.
            want = 1000 + len(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
            got = 0
            while kind == "tls" or got < want:
                chunk = t.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
            if kind == "tls":
                t.close()
            print(f"{kind} {port} from {sport}: ok, {got} bytes", file=sys.stderr)
        except (OSError, ssl.SSLError) as e:
            print(f"{kind} {port} from {sport}: failed: {e}", file=sys.stderr)
        finally:
            raw.close()
    else:
        sys.exit(f"unknown step {step}")
