"""A client of the gateway's web frontend for side_effect.yml: one HTTP/1.0 request after the
other, each on a new connection, until stopped; one line per request in the file argv[1]: the
status HAProxy answered, or the name of the error when it did not answer."""

import socket
import sys

with open(sys.argv[1], "a", encoding="utf-8") as out:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", 8080), timeout=10) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\nHost: gateway\r\n\r\n")
                head = conn.recv(64)
            outcome = (
                head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else f"answer {head[:20]!r}"
            )
        except OSError as e:
            outcome = type(e).__name__
        out.write(outcome + "\n")
        out.flush()
