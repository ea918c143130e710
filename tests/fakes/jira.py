"""A local stand-in for Jira's REST API (Cloud v3 and Server/Data Center v2), so the Jira channel is tested
through its real HTTP code.

Answers like Jira: ``{"errorMessages": [...], "errors": {"field": "message"}}`` with HTTP 400 for a bad
issue (missing project, summary or issue type, an unknown priority, a v3 description that is not an ADF
document, a description over 32,767 characters, a label with a space, a required custom field left out),
401 without valid credentials (Basic ``email:token`` or ``Bearer`` PAT), 404 for an unknown issue, 410 for
the removed Cloud ``/rest/api/3/search``. Serves create issue, ``search/jql`` (v3) and ``search`` (v2) by
label, comments, transitions (GET/POST) over a small workflow: To Do -> In Progress -> Done -> Reopen.

Usage::

    with FakeJira(token="t", user="bot@acme.com") as jira:
        ... options={"base_url": jira.url, "insecure": True, "user": "bot@acme.com"} ...
        jira.fail_next(429, retry_after=7); jira.hang_next(2.0)
        jira.issues["SEC-1"].status
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DESCRIPTION_LIMIT = 32_767
STATUS_CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
WORKFLOW: dict[str, list[tuple[str, str, str]]] = {
    # status -> [(transition id, transition name, to status)]
    "To Do": [("11", "Start Progress", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop Progress", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}
ADF_BLOCKS = {
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "codeBlock",
    "rule",
    "blockquote",
}
ADF_MARKS = {"strong", "em", "code", "link", "underline", "strike"}


@dataclass
class Call:
    method: str
    path: str
    version: str
    body: Any
    auth: str | None
    status: int = 0


@dataclass
class Issue:
    key: str
    fields: dict[str, Any]
    version: str
    status: str = "To Do"
    resolution: str | None = None
    comments: list[Any] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)


@dataclass
class _Script:
    status: int
    times: int
    retry_after: float | None = None
    hang_seconds: float = 0.0


@dataclass
class FakeJira:
    token: str = "jira-api-token-fake"
    user: str | None = "tocsin@acme.example"
    """Basic auth user; None to accept only ``Bearer <token>``."""
    projects: tuple[str, ...] = ("SEC",)
    issue_types: tuple[str, ...] = ("Task", "Bug")
    priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest")
    required_custom_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self.issues: dict[str, Issue] = {}
        self.url = ""
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []
        self._counter = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- test controls ------------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None) -> None:
        """The next ``times`` requests answer ``status`` (429 with ``Retry-After`` when given)."""
        with self._lock:
            self._scripts.append(_Script(status, times, retry_after=retry_after))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._scripts.append(_Script(0, times, hang_seconds=seconds))

    def calls_to(self, method: str, suffix: str) -> list[Call]:
        """Successful calls whose path ends with ``suffix`` (e.g. ``/issue``, ``/comment``)."""
        with self._lock:
            return [
                c for c in self.calls if c.method == method and c.path.endswith(suffix) and c.status < 300
            ]

    def move(self, key: str, status: str, resolution: str | None = "Done") -> None:
        """A person moves the ticket in Jira (no call recorded)."""
        issue = self.issues[key]
        issue.status = status
        issue.resolution = resolution if STATUS_CATEGORY[status] == "done" else None

    def webhook_payload(self, key: str, *, account_id: str = "5b10ac8d82e05b22cc7d4ef5") -> dict[str, Any]:
        """What Jira posts to a webhook after ``key`` changed (``jira:issue_updated``)."""
        issue = self.issues.get(key)
        status = issue.status if issue else "Done"
        resolution = issue.resolution if issue else "Done"
        return {
            "timestamp": 1_700_000_000_000,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": account_id, "displayName": "Alice Admin", "active": True},
            "issue": {
                "id": "10001",
                "key": key,
                "fields": {
                    "status": {
                        "name": status,
                        "statusCategory": {"key": STATUS_CATEGORY.get(status, "new"), "name": status},
                    },
                    "resolution": {"name": resolution} if resolution else None,
                    "summary": issue.fields.get("summary") if issue else "gone",
                },
            },
            "changelog": {"items": [{"field": "status", "toString": status}]},
        }

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_GET(self) -> None:
                fake._handle(self, "GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeJira:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -----------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(request.path).path
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<unparseable>"
        match = re.match(r"^/rest/api/(2|3)(/.*)$", path)
        call = Call(method, path, match.group(1) if match else "", body, request.headers.get("Authorization"))
        with self._lock:
            self.calls.append(call)
            script = self._take_script()
        if script is not None and script.hang_seconds:
            self._stopping.wait(script.hang_seconds)
            script = None
        if script is not None:
            headers = {"Retry-After": f"{script.retry_after:g}"} if script.retry_after is not None else {}
            status, answer = script.status, _errors([f"scripted HTTP {script.status}"])
        elif not self._authorized(call.auth):
            status, headers, answer = (
                401,
                {},
                _errors(["You are not authenticated. Authentication required."]),
            )
        elif match is None:
            status, headers, answer = 404, {}, _errors(["No such API"])
        else:
            headers = {}
            with self._lock:
                status, answer = self._route(method, call.version, match.group(2), body)
        call.status = status
        _send(request, status, headers, answer)

    def _take_script(self) -> _Script | None:
        if not self._scripts:
            return None
        script = self._scripts[0]
        script.times -= 1
        if script.times <= 0:
            self._scripts.pop(0)
        return script

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ") == self.token
        if header.startswith("Basic ") and self.user is not None:
            try:
                pair = base64.b64decode(header.removeprefix("Basic ")).decode()
            except ValueError:
                return False
            return pair == f"{self.user}:{self.token}"
        return False

    def _route(self, method: str, version: str, rest: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and rest == "/issue":
            return self._create(version, body)
        if method == "POST" and (
            (version == "3" and rest == "/search/jql") or (version == "2" and rest == "/search")
        ):
            return self._search(body)
        if version == "3" and rest == "/search":
            return 410, _errors(
                ["The requested API has been removed. Please migrate to /rest/api/3/search/jql."]
            )
        issue_match = re.match(r"^/issue/([A-Z][A-Z0-9_]*-[0-9]+)(/comment|/transitions)?$", rest)
        if issue_match is None:
            return 404, _errors(["No such API"])
        issue = self.issues.get(issue_match.group(1))
        if issue is None:
            return 404, _errors(["Issue does not exist or you do not have permission to see it."])
        sub = issue_match.group(2)
        if sub is None and method == "GET":
            return 200, {"key": issue.key, "fields": {**issue.fields, "status": {"name": issue.status}}}
        if sub == "/comment" and method == "POST":
            problem = _body_problem(version, body.get("body") if isinstance(body, dict) else None, "body")
            if problem:
                return 400, problem
            issue.comments.append(body["body"])
            return 201, {"id": str(10000 + len(issue.comments)), "body": body["body"]}
        if sub == "/transitions" and method == "GET":
            return 200, {
                "transitions": [
                    {
                        "id": tid,
                        "name": name,
                        "to": {"name": to, "statusCategory": {"key": STATUS_CATEGORY[to]}},
                    }
                    for tid, name, to in WORKFLOW[issue.status]
                ]
            }
        if sub == "/transitions" and method == "POST":
            wanted = body.get("transition", {}).get("id") if isinstance(body, dict) else None
            step = next(((n, to) for tid, n, to in WORKFLOW[issue.status] if tid == str(wanted)), None)
            if step is None:
                return 400, _errors([f"Transition id '{wanted}' is not valid for this issue."])
            issue.transitions.append(step[0])
            self.move(issue.key, step[1])
            return 204, None
        return 405, _errors(["Method not allowed"])

    def _create(self, version: str, body: Any) -> tuple[int, Any]:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, _errors(["Field 'fields' is required."])
        errors: dict[str, str] = {}
        project = fields.get("project")
        project_key = project.get("key") if isinstance(project, dict) else None
        if not project_key:
            errors["project"] = "Specify a valid project ID or key"
        elif project_key not in self.projects:
            errors["project"] = f"project is required (no project {project_key!r})"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        issuetype = fields.get("issuetype")
        type_name = issuetype.get("name") if isinstance(issuetype, dict) else None
        if not type_name:
            errors["issuetype"] = "Specify an issue type"
        elif type_name not in self.issue_types:
            errors["issuetype"] = "Specify a valid issue type"
        if "description" in fields:
            problem = _body_problem(version, fields["description"], "description")
            if problem:
                errors.update(problem["errors"])
        priority = fields.get("priority")
        if priority is not None and (
            not isinstance(priority, dict) or priority.get("name") not in self.priorities
        ):
            errors["priority"] = f"Priority name '{priority}' is not valid"
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(not isinstance(x, str) or " " in x for x in labels):
            errors["labels"] = "The label must not contain spaces."
        for name in self.required_custom_fields:
            if fields.get(name) in (None, "", []):
                errors[name] = f"{name} is required."
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        self._counter += 1
        key = f"{project_key}-{self._counter}"
        self.issues[key] = Issue(key=key, fields=fields, version=version)
        return 201, {
            "id": str(10000 + self._counter),
            "key": key,
            "self": f"{self.url}/rest/api/{version}/issue/{key}",
        }

    def _search(self, body: Any) -> tuple[int, Any]:
        jql = body.get("jql") if isinstance(body, dict) else None
        if not isinstance(jql, str):
            return 400, _errors(["jql is required"])
        wanted = re.findall(r'labels\s*=\s*"?([^"\s]+)"?', jql)
        project = re.findall(r'project\s*=\s*"?([^"\s]+)"?', jql)
        found = [
            {
                "id": str(10000 + int(i.key.split("-")[1])),
                "key": i.key,
                "fields": {"status": {"name": i.status}},
            }
            for i in self.issues.values()
            if all(label in i.fields.get("labels", []) for label in wanted)
            and (not project or i.fields["project"]["key"] == project[0])
        ]
        limit = int(body.get("maxResults") or 50)
        return 200, {"issues": found[:limit], "isLast": True}


def _errors(messages: list[str], errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"errorMessages": messages, "errors": errors or {}}


def _body_problem(version: str, value: Any, name: str) -> dict[str, Any] | None:
    """Jira's answer to a description/comment body of the wrong shape or size, or None."""
    if version == "3":
        problems = adf_problems(value)
        if problems:
            return _errors(
                [], {name: "Operation value must be an Atlassian Document (" + "; ".join(problems[:3]) + ")"}
            )
        size = len(json.dumps(value, ensure_ascii=False))
    else:
        if not isinstance(value, str):
            return _errors([], {name: "Operation value must be a string"})
        size = len(value)
    if size > DESCRIPTION_LIMIT:
        return _errors(
            [],
            {
                name: f"The entered text is too long. It exceeds the allowed limit of {DESCRIPTION_LIMIT:,} characters."
            },
        )
    return None


def adf_problems(doc: Any) -> list[str]:
    """What makes ``doc`` an invalid ADF document (the subset Tocsin writes), [] when valid."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return ["root must be {type: doc, version: 1}"]
    problems: list[str] = []

    def visit(node: Any, where: str) -> None:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            problems.append(f"{where}: not a node")
            return
        kind = node["type"]
        if kind == "text":
            if not isinstance(node.get("text"), str) or not node["text"]:
                problems.append(f"{where}: text nodes need non-empty text")
            for mark in node.get("marks", []):
                if not isinstance(mark, dict) or mark.get("type") not in ADF_MARKS:
                    problems.append(f"{where}: unknown mark {mark!r}")
                elif mark["type"] == "link" and not str(mark.get("attrs", {}).get("href", "")).startswith(
                    "http"
                ):
                    problems.append(f"{where}: link needs an href")
            return
        if kind not in ADF_BLOCKS:
            problems.append(f"{where}: unknown node type {kind!r}")
            return
        if kind == "heading" and node.get("attrs", {}).get("level") not in range(1, 7):
            problems.append(f"{where}: heading level must be 1-6")
        content = node.get("content", [])
        if kind in ("bulletList", "orderedList") and (
            not content or any(not isinstance(c, dict) or c.get("type") != "listItem" for c in content)
        ):
            problems.append(f"{where}: lists hold listItems only")
        for i, child in enumerate(content if isinstance(content, list) else []):
            visit(child, f"{where}/{i}")

    content = doc.get("content")
    if not isinstance(content, list):
        return ["doc.content must be a list"]
    for i, node in enumerate(content):
        visit(node, f"content/{i}")
    return problems


def _send(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    try:
        request.send_response(status)
        if body is not None:
            request.send_header("Content-Type", "application/json;charset=UTF-8")
        request.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
