"""A SIP scanner for bench/telephony.py's flood mode: OPTIONS and REGISTER guesses from many
loopback addresses (all of 127/8 is on lo), a third with a scanner's User-Agent.

    python bench/sip_flooder.py PORT RATE SECONDS SOURCES     (prints datagrams sent)
"""

from __future__ import annotations

import socket
import sys
import time


def message(n: int, method: str, host: str, port: int, target: int) -> bytes:
    user = 1000 + n % 9000
    ua = "friendly-scanner" if n % 3 == 0 else "Zoiper"
    lines = [
        f"{method} sip:100@127.0.0.1:{target} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{n}",
        f"From: <sip:{user}@127.0.0.1>;tag={n}",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: flood{n}",
        f"CSeq: 1 {method}",
        f"User-Agent: {ua}",
        f'Authorization: Digest username="{user}", realm="hotline", nonce="x", '
        f'uri="sip:127.0.0.1", response="0"',
        f"Contact: <sip:x@{host}>",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main() -> None:
    target, rate, seconds, sources = (int(sys.argv[1]), float(sys.argv[2]),
                                      float(sys.argv[3]), int(sys.argv[4]))
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.{1 + i // 65536}.{(i // 256) % 256}.{1 + i % 254}", 0))
        s.setblocking(False)
        socks.append(s)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        s = socks[n % len(socks)]
        host, port = s.getsockname()
        try:
            s.sendto(message(n, "OPTIONS" if n % 2 else "REGISTER", host, port, target),
                     ("127.0.0.1", target))
            while True:
                s.recv(4096)
        except OSError:  # BlockingIOError: nothing (more) to read
            pass
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    print(n)


if __name__ == "__main__":
    main()
