"""Lab TLS server for the abortive-close pattern: it answers one request with a fixed-size
response, waits for the client to close (its FIN), then still sends a TLS record (close_notify,
24 bytes in TLS 1.3) and closes at once. The client, whose socket is closed already, answers
that record with a RST, and the server's FIN reaches it just after: a normal close that must not
be read as a failure or as a middlebox.

Usage: tls_close_server.py PORT CERT KEY
"""
import socket
import ssl
import sys
import threading

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000


def serve(raw):
    try:
        with ctx.wrap_socket(raw, server_side=True) as t:
            t.recv(4096)
            t.sendall(RESPONSE)
            # The client's FIN: the TLS layer sees the end of the stream.
            while t.recv(4096):
                pass
            # close_notify without waiting for the client's: the record leaves, then the FIN.
            t.setblocking(False)
            try:
                t.unwrap()
            except (ssl.SSLError, OSError):
                pass
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
