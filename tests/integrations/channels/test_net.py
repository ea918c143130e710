"""The connect-time outbound guard every channel's HTTP client goes through: each address class is refused
with a message naming it, the allow-list lets the test servers through, redirects are not followed, and
plain http or credentials in a URL are refused by ``check_url``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app.contracts import OutboundPolicy
from integrations.channels._net import OutboundRefused, check_url, guarded_client


class _Redirecting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    srv = HTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


def _get(url: str, policy: OutboundPolicy) -> int:
    async def run() -> int:
        async with guarded_client(policy) as client:
            return (await client.get(url)).status_code

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://127.0.0.1:9/", "loopback"),
        ("http://localhost:9/", "loopback"),
        ("http://[::1]:9/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "private|unspecified"),
        ("http://metadata.google.internal/", "metadata"),
    ],
)
def test_each_non_public_address_class_is_refused_at_connect_time(url: str, label: str) -> None:
    with pytest.raises(OutboundRefused, match=label):
        _get(url, OutboundPolicy())


def test_allow_listed_hosts_are_reached_and_redirects_not_followed(server: int) -> None:
    policy = OutboundPolicy(frozenset({"127.0.0.1"}))
    assert _get(f"http://127.0.0.1:{server}/", policy) == 200
    assert _get(f"http://127.0.0.1:{server}/redirect", policy) == 302  # not followed to the metadata address


def test_urls_need_https_and_no_credentials() -> None:
    assert str(check_url("https://hooks.example.com/x")) == "https://hooks.example.com/x"
    with pytest.raises(ValueError, match="https"):
        check_url("http://hooks.example.com/x")
    assert check_url("http://127.0.0.1:8080/x", allow_http=True).port == 8080
    with pytest.raises(ValueError, match="credentials"):
        check_url("https://user:pass@hooks.example.com/")
    with pytest.raises(ValueError, match="http"):
        check_url("file:///etc/passwd")
