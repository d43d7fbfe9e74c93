"""The IVR's lookup of caller data on a tenant's own server, over real HTTP on loopback: what
it answers becomes the call's data, and a tenant's URL cannot reach what only the server can
reach (loopback, private and link-local addresses) unless the operator allows it."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hotline.calls.ivr_calls import _fetch, _permitted

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


class Crm(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = json.dumps({"tier": "gold", "asked": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def crm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_answer_comes_back_with_the_calls_data_as_query(crm: str) -> None:
    answer = _fetch(f"{crm}/customer?src=ivr", {"caller": "13800000001", "did": "400"}, 2.0,
                    LOOPBACK)
    assert answer["tier"] == "gold"
    assert answer["asked"] == "/customer?src=ivr&caller=13800000001&did=400"


def test_addresses_only_the_server_reaches_are_refused_unless_allowed(crm: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        _fetch(f"{crm}/customer", {}, 2.0)  # loopback, not allowed by the operator
    for address in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "100.100.100.200",
                    "::1", "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0"):
        assert not _permitted(address, []), address
    assert _permitted("8.8.8.8", []) and _permitted("2001:4860:4860::8888", [])
    assert _permitted("10.1.2.3", [ipaddress.ip_network("10.0.0.0/8")])


def test_redirects_are_not_followed(crm: str) -> None:
    with pytest.raises(ValueError, match="302"):
        _fetch(f"{crm}/moved", {}, 2.0, LOOPBACK)
