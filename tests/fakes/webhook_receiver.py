"""A local webhook receiver: records every request's headers and raw body, and can verify the
``X-Tocsin-Signature`` the way docs/webhooks.md tells receivers to (``verify`` is handed in, so the tests
run the documented example itself). Scripted answers: ``fail_next(429, retry_after=...)``, ``500``, ``410``,
``hang_next(seconds)``.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes._server import Answer, FakeServer, Request

Verifier = Callable[[bytes, str, bytes], bool]
"""``verify(secret, signature_header, raw_body) -> bool``."""


class WebhookReceiver(FakeServer):
    def __init__(
        self, secret: bytes | None = None, verify: Verifier | None = None, path: str = "/hooks/tocsin"
    ) -> None:
        super().__init__()
        self.secret = secret
        self.verify = verify
        self.path = path
        self.verified: list[bool] = []
        """For each request that reached ``answer``: whether its signature verified (when checking)."""

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def hook_url(self) -> str:
        return self.url + self.path

    def answer(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != self.path:
            return 404, {}, {"error": "not found"}
        if self.verify is not None and self.secret is not None:
            ok = self.verify(self.secret, request.headers.get("x-tocsin-signature", ""), request.body)
            self.verified.append(ok)
            if not ok:
                return 401, {}, {"error": "bad signature"}
        return 204, {}, None
