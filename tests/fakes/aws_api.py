"""A local stand-in for the AWS APIs that moto does not serve with findings: GuardDuty, Macie, and STS.

One HTTP server speaks the wire protocols botocore uses (REST-JSON for ``guardduty`` and ``macie2``, the
query protocol with XML answers for ``sts``), so the puller runs boto3's real code path against it
(signing, serialization, response parsing, retries). The service is told apart by the SigV4 credential
scope in the ``Authorization`` header (``Credential=<key>/<date>/<region>/<service>/aws4_request``), as
Macie's ``POST /findings`` and Security Hub's share a path.

Served like the real APIs: ``updatedAt`` criteria in epoch milliseconds (GuardDuty ``greaterThanOrEqual``/
``lessThanOrEqual``/``gt``..., Macie ``gte``/``lte``/``gt``/``lt``), sorting on ``updatedAt``, pages of at
most ``maxResults`` (50 at most) with ``nextToken``, GetFindings refusing more than 50 ids. Every request
is recorded; ``fail`` makes an operation answer with an AWS error (a number of times, or always).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "123456789012"
MAX_PAGE = 50
_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class Recorded:
    service: str
    operation: str
    region: str
    access_key: str
    body: dict[str, Any]


@dataclass
class Failure:
    status: int
    code: str
    message: str
    times: int | None  # None: always


@dataclass
class FakeAwsApi:
    guardduty: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # detector id -> findings
    macie: list[dict[str, Any]] = field(default_factory=list)
    account: str = ACCOUNT
    denied_roles: set[str] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self.url = ""
        self._lock = threading.Lock()

    # -- test controls -------------------------------------------------------------------------------

    def fail(
        self, service: str, operation: str, status: int, code: str, message: str, times: int | None = None
    ) -> None:
        self.failures[(service, operation)] = Failure(status, code, message, times)

    def calls(self, service: str, operation: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.service == service and operation in (None, r.operation)]

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- dispatch ------------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        scope = _SCOPE.search(request.headers.get("Authorization") or "")
        if scope is None:
            return self._send(
                request, 403, {"message": "missing SigV4 signature"}, "MissingAuthenticationTokenException"
            )
        service, region, key = scope["service"], scope["region"], scope["key"]
        url = urlsplit(request.path)
        if service == "sts":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            return self._sts(request, form, region, key)
        body = json.loads(raw) if raw else {}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        operation, detector = _operation(service, request.command, url.path)
        with self._lock:
            self.requests.append(Recorded(service, operation, region, key, {**query, **body}))
            failure = self.failures.get((service, operation))
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times < 0:
                    failure = None
        if failure is not None:
            return self._send(request, failure.status, {"message": failure.message}, failure.code)
        try:
            answer = self._answer(service, operation, detector, {**query, **body})
        except _BadRequest as exc:
            return self._send(
                request,
                400,
                {"message": str(exc)},
                "BadRequestException" if service == "guardduty" else "ValidationException",
            )
        return self._send(request, 200, answer)

    def _answer(
        self, service: str, operation: str, detector: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        if (service, operation) == ("guardduty", "ListDetectors"):
            ids = sorted(self.guardduty)
            page, token = _page(ids, body.get("nextToken"), int(body.get("maxResults") or MAX_PAGE))
            return {"detectorIds": page, **({"nextToken": token} if token else {})}
        if service == "guardduty" and detector not in self.guardduty:
            raise _BadRequest(
                "The request is rejected because the input detectorId is not owned by the current account."
            )
        if (service, operation) == ("guardduty", "ListFindings"):
            criterion = (body.get("findingCriteria") or {}).get("criterion") or {}
            found = _select(self.guardduty[detector or ""], criterion.get("updatedAt") or {}, "id")
            page, token = _page(
                [f["id"] for f in found], body.get("nextToken"), int(body.get("maxResults") or MAX_PAGE)
            )
            return {"findingIds": page, **({"nextToken": token} if token else {})}
        if (service, operation) == ("guardduty", "GetFindings"):
            return {"findings": _by_ids(self.guardduty[detector or ""], body.get("findingIds") or [], "id")}
        if (service, operation) == ("macie2", "ListFindings"):
            criterion = (body.get("findingCriteria") or {}).get("criterion") or {}
            found = _select(self.macie, criterion.get("updatedAt") or {}, "id")
            page, token = _page(
                [f["id"] for f in found], body.get("nextToken"), int(body.get("maxResults") or MAX_PAGE)
            )
            return {"findingIds": page, **({"nextToken": token} if token else {})}
        if (service, operation) == ("macie2", "GetFindings"):
            return {"findings": _by_ids(self.macie, body.get("findingIds") or [], "id")}
        raise _BadRequest(f"{service} {operation} is not served by the fake")

    def _sts(self, request: BaseHTTPRequestHandler, form: dict[str, str], region: str, key: str) -> None:
        action = form.get("Action", "")
        with self._lock:
            self.requests.append(Recorded("sts", action, region, key, form))
        if action == "GetCallerIdentity":
            result = f"<Arn>arn:aws:iam::{self.account}:user/tocsin-test</Arn><UserId>AIDATEST</UserId><Account>{self.account}</Account>"
            return self._send_xml(
                request,
                200,
                f'<GetCallerIdentityResponse xmlns="{_STS_NS}"><GetCallerIdentityResult>{result}</GetCallerIdentityResult></GetCallerIdentityResponse>',
            )
        if action == "AssumeRole":
            role = form.get("RoleArn", "")
            if role in self.denied_roles:
                message = f"User: arn:aws:iam::{self.account}:user/tocsin-test is not authorized to perform: sts:AssumeRole on resource: {role}"
                error = (
                    f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>"
                )
                return self._send_xml(
                    request,
                    403,
                    f'<ErrorResponse xmlns="{_STS_NS}">{error}<RequestId>1</RequestId></ErrorResponse>',
                )
            session = form.get("RoleSessionName", "")
            account = role.split(":")[4]
            credentials = (
                f"<AccessKeyId>ASIA{account}</AccessKeyId><SecretAccessKey>assumed-secret-{account}</SecretAccessKey>"
                f"<SessionToken>assumed-token-{account}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
            )
            user = f"<Arn>arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}</Arn><AssumedRoleId>AROATEST:{session}</AssumedRoleId>"
            return self._send_xml(
                request,
                200,
                f'<AssumeRoleResponse xmlns="{_STS_NS}"><AssumeRoleResult><Credentials>{credentials}</Credentials><AssumedRoleUser>{user}</AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>',
            )
        return self._send_xml(
            request,
            400,
            f'<ErrorResponse xmlns="{_STS_NS}"><Error><Code>InvalidAction</Code><Message>{action}</Message></Error></ErrorResponse>',
        )

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: dict[str, Any], error_type: str | None = None
    ) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("x-amzn-RequestId", "fake-request")
        if error_type:
            request.send_header("x-amzn-ErrorType", error_type)
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _send_xml(request: BaseHTTPRequestHandler, status: int, body: str) -> None:
        data = body.encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/xml")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


class _BadRequest(Exception):
    pass


def _operation(service: str, method: str, path: str) -> tuple[str, str | None]:
    parts = [p for p in path.split("/") if p]
    if service == "guardduty":
        if parts == ["detector"] and method == "GET":
            return "ListDetectors", None
        if len(parts) == 3 and parts[0] == "detector" and parts[2] == "findings":
            return "ListFindings", parts[1]
        if len(parts) == 4 and parts[0] == "detector" and parts[2:] == ["findings", "get"]:
            return "GetFindings", parts[1]
    if service == "macie2":
        if parts == ["findings"]:
            return "ListFindings", None
        if parts == ["findings", "describe"]:
            return "GetFindings", None
    return f"{method} {path}", None


def epoch_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


_BOUNDS = {
    "gt": lambda v, b: v > b,
    "greaterThan": lambda v, b: v > b,
    "gte": lambda v, b: v >= b,
    "greaterThanOrEqual": lambda v, b: v >= b,
    "lt": lambda v, b: v < b,
    "lessThan": lambda v, b: v < b,
    "lte": lambda v, b: v <= b,
    "lessThanOrEqual": lambda v, b: v <= b,
}


def _select(findings: list[dict[str, Any]], condition: dict[str, Any], id_key: str) -> list[dict[str, Any]]:
    chosen = []
    for finding in findings:
        updated = epoch_ms(finding["updatedAt"])
        if all(_BOUNDS[op](updated, int(bound)) for op, bound in condition.items() if op in _BOUNDS):
            chosen.append(finding)
    return sorted(chosen, key=lambda f: (epoch_ms(f["updatedAt"]), f[id_key]))


def _page(ids: list[str], token: str | None, size: int) -> tuple[list[str], str | None]:
    if not 1 <= size <= MAX_PAGE:
        raise _BadRequest(f"maxResults must be between 1 and {MAX_PAGE}")
    start = int(token or 0)
    end = start + size
    return ids[start:end], (str(end) if end < len(ids) else None)


def _by_ids(findings: list[dict[str, Any]], ids: list[str], id_key: str) -> list[dict[str, Any]]:
    if len(ids) > MAX_PAGE:
        raise _BadRequest(f"findingIds: at most {MAX_PAGE} ids")
    wanted = set(ids)
    chosen = [copy.deepcopy(f) for f in findings if f[id_key] in wanted]
    return sorted(chosen, key=lambda f: (epoch_ms(f["updatedAt"]), f[id_key]))
