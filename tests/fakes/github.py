"""A local stand-in for the GitHub Issues REST API, so the channel runs its real httpx client over HTTP.

Answers like GitHub: 401 ``Bad credentials`` / ``Requires authentication``, 404 ``Not Found`` for an
unknown repository or issue, 422 ``Validation Failed`` with ``errors`` for a missing title, a non-string
label or a bad ``state``/``state_reason``. Unknown labels on create are fine (GitHub creates them). Serves
``POST /repos/{o}/{r}/issues``, ``PATCH /repos/{o}/{r}/issues/{n}``, ``POST .../issues/{n}/comments``,
``GET .../issues/{n}`` and ``GET /search/issues?q=repo:o/r label:x``, with or without GitHub Enterprise's
``/api/v3`` prefix. Scripted failures: ``secondary_rate_limit`` (403 + Retry-After), ``primary_rate_limit``
(403, ``x-ratelimit-remaining: 0``), ``fail_next(500)``, ``hang_next(seconds)``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes._server import Answer, FakeServer, Request

_ISSUES = re.compile(r"^/repos/([^/]+/[^/]+)/issues(?:/(\d+))?(/comments)?$")
_TERMS = re.compile(r'(\w+):("[^"]*"|\S+)')
STATE_REASONS = {"closed": {"completed", "not_planned", None}, "open": {"reopened", None}}


@dataclass
class Issue:
    number: int
    title: str
    body: str
    labels: list[str]
    assignees: list[str]
    state: str = "open"
    state_reason: str | None = None
    comments: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    """State changes in order: "closed:completed", "open:reopened"..."""

    def as_json(self, repo: str) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "state_reason": self.state_reason,
            "labels": [{"name": name} for name in self.labels],
            "assignees": [{"login": login} for login in self.assignees],
            "comments": len(self.comments),
            "html_url": f"https://github.com/{repo}/issues/{self.number}",
        }


class FakeGitHub(FakeServer):
    def __init__(self, token: str = "ghp_fake", repos: tuple[str, ...] = ("acme/security",)) -> None:
        super().__init__()
        self.token = token
        self.issues: dict[str, dict[int, Issue]] = {repo: {} for repo in repos}
        self.labels: dict[str, set[str]] = {repo: {"bug", "security"} for repo in repos}
        self._last_number: dict[str, int] = dict.fromkeys(repos, 0)  # numbers are never reused

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls --------------------------------------------------------------------------------------

    def secondary_rate_limit(self, retry_after: float = 60, times: int = 1) -> None:
        body = {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        }
        self.fail_next(403, times, body=body, retry_after=retry_after)

    def primary_rate_limit(self, reset_in: float = 120) -> None:
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time() + reset_in))}
        self.fail_next(403, headers=headers, body={"message": "API rate limit exceeded for installation."})

    def all_issues(self, repo: str = "acme/security") -> list[Issue]:
        return sorted(self.issues[repo].values(), key=lambda issue: issue.number)

    def api_calls(self) -> list[str]:
        """``METHOD path`` of every request, in order (without the Enterprise prefix)."""
        return [f"{r.method} {r.path.removeprefix('/api/v3')}" for r in self.requests]

    # -- answers ---------------------------------------------------------------------------------------

    def answer(self, request: Request) -> Answer:
        auth = request.headers.get("authorization", "")
        if not auth:
            return 401, {}, {"message": "Requires authentication"}
        if auth != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials"}
        if request.headers.get("x-github-api-version", "2022-11-28") != "2022-11-28":
            return 400, {}, {"message": "Unsupported API version"}
        path = request.path.removeprefix("/api/v3")
        if path == "/search/issues" and request.method == "GET":
            return self._search(request.query.get("q", ""))
        match = _ISSUES.match(path)
        if match is None:
            return 404, {}, {"message": "Not Found"}
        repo, number, comments = match.group(1), match.group(2), match.group(3)
        if repo not in self.issues:
            return 404, {}, {"message": "Not Found"}
        if number is None:
            return self._create(repo, request.json()) if request.method == "POST" else (404, {}, _not_found())
        issue = self.issues[repo].get(int(number))
        if issue is None:
            return 404, {}, _not_found()
        if comments and request.method == "POST":
            return self._comment(issue, request.json())
        if not comments and request.method == "PATCH":
            return self._update(repo, issue, request.json())
        if not comments and request.method == "GET":
            return 200, {}, issue.as_json(repo)
        return 404, {}, _not_found()

    def _create(self, repo: str, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
            return _invalid("Issue", "title", "missing_field")
        labels = body.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
            return _invalid("Issue", "labels", "invalid")
        self.labels[repo].update(labels)  # GitHub creates labels it does not know yet
        number = self._last_number[repo] = self._last_number[repo] + 1
        issue = Issue(
            number, body["title"], str(body.get("body") or ""), labels, list(body.get("assignees") or [])
        )
        self.issues[repo][number] = issue
        return 201, {"Location": f"/repos/{repo}/issues/{number}"}, issue.as_json(repo)

    def _comment(self, issue: Issue, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"].strip():
            return _invalid("IssueComment", "body", "missing_field")
        issue.comments.append(body["body"])
        return 201, {}, {"id": len(issue.comments), "body": body["body"]}

    def _update(self, repo: str, issue: Issue, body: Any) -> Answer:
        if not isinstance(body, dict):
            return _invalid("Issue", "body", "invalid")
        state = body.get("state", issue.state)
        reason = body.get("state_reason")
        if state not in STATE_REASONS or reason not in STATE_REASONS[state]:
            return _invalid("Issue", "state_reason" if state in STATE_REASONS else "state", "invalid")
        if state != issue.state:
            issue.history.append(f"{state}:{reason}")
        issue.state, issue.state_reason = state, reason
        return 200, {}, issue.as_json(repo)

    def _search(self, query: str) -> Answer:
        terms: dict[str, list[str]] = {}
        for name, value in _TERMS.findall(query):
            terms.setdefault(name, []).append(value.strip('"'))
        repos = terms.get("repo", [])
        if len(repos) != 1 or repos[0] not in self.issues:
            return _invalid("Search", "q", "invalid")
        wanted = set(terms.get("label", []))
        items = [
            issue.as_json(repos[0]) for issue in self.all_issues(repos[0]) if wanted <= set(issue.labels)
        ]
        return 200, {}, {"total_count": len(items), "incomplete_results": False, "items": items}


def _not_found() -> dict[str, str]:
    return {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


def _invalid(resource: str, field_name: str, code: str) -> Answer:
    return (
        422,
        {},
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "field": field_name, "code": code}],
            "documentation_url": "https://docs.github.com/rest",
        },
    )
