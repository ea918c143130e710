"""Gitleaks JSON reports (``gitleaks detect --report-format json``) -> native findings, secrets masked.

Pure: no DB, no HTTP. A report is an array of leaks; ``null`` (what Gitleaks 7 writes when it finds
nothing) and ``[]`` are empty reports. Both layouts are read:

* Gitleaks 8: ``{RuleID, Description, StartLine, EndLine, StartColumn, EndColumn, Match, Secret, File,
  SymlinkFile, Commit, Link, Entropy, Author, Email, Date, Message, Tags, Fingerprint}``;
* Gitleaks 7: ``{line, lineNumber, offender, commit, repo, repoURL, leakURL, rule, commitMessage, author,
  email, file, date, tags}`` (``offender`` is the match, ``line`` the whole source line).

Identity: one finding per (rule, repository, file, secret), ``source_id`` =
``secret:<rule>:<digest of [rule, repoURL, file, secret_digest(Secret or offender)]>``. The same secret in
many commits (or on several lines of one file) is **one** finding: rotating it fixes them all, and keying by
commit would re-open it for every commit a history scan walks. The commits and lines of its occurrences are
listed in ``context``. ``Fingerprint`` (commit:file:rule:line) is kept in ``context`` for ``.gitleaksignore``
but is not the key, since it changes with the commit and the line. Only Gitleaks 7 names the repository
(``repoURL``); with Gitleaks 8 the same secret at the same path in two repositories has one key unless the
caller tells the repositories apart (see the report to the API). Reports made with ``--redact`` carry
``REDACTED`` instead of the value: their key uses a digest of the redacted line (``line``, else ``Match``)
instead, so identical redacted lines of one file are one finding.

Masking (``integrations.sources.secrets``): ``Secret`` and ``offender`` are replaced by their masked form
(``AKIA…(20)``) in every string of every stored finding and its ``raw`` (the match and the source line keep
their text around it; every secret of the report is masked in every finding, since two keys on one line
make two leaks that each quote both); ``Match`` too when it does not contain ``Secret`` (Gitleaks can
decode before it matches). The key uses ``secret_digest``, the salted HMAC described there.

Severity: Gitleaks has none; ``secret_severity`` gives critical for cloud-provider credentials and private
keys, high for every other rule. Status is always open (a report lists what is present). ``location`` is
``File`` and ``StartLine``; ``Link``/``leakURL`` is the reference. ``observed_at`` stays unset: ``Date`` is
the commit's date (in ``context``), not when the leak was seen.

``parse`` raises ``ValueError`` naming the JSON path (safe to show) when an entry is not a Gitleaks leak.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus
from integrations.sources.secrets import Redactor, collapse_whitespace, mask, secret_digest, secret_severity

name = "gitleaks"

REDACTED = "REDACTED"
REMEDIATION = "Revoke and rotate the secret, then remove it from the file and from the repository history."
_ZERO_DATE = "0001-01-01"
_MAX_LISTED = 20


def detect(document: Any) -> bool:
    """An array whose first entry is a Gitleaks 8 (RuleID and File/Secret) or Gitleaks 7 leak."""
    if not isinstance(document, list) or not document or not isinstance(document[0], dict):
        return False
    first = document[0]
    if isinstance(first.get("RuleID"), str):
        return any(key in first for key in ("File", "Secret", "Match"))
    return isinstance(first.get("rule"), str) and "offender" in first and "file" in first


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """One finding per distinct secret, in report order. Raises ValueError (safe to show) if not Gitleaks."""
    if document is None:
        return
    if not isinstance(document, list):
        raise ValueError(
            f"not a Gitleaks JSON report: expected an array of leaks, got {type(document).__name__}"
        )
    groups: dict[str, list[_Leak]] = {}
    for index, item in enumerate(document):
        path = f"$[{index}]"
        if not isinstance(item, dict):
            raise ValueError(
                f"not a Gitleaks JSON report: {path} must be an object, got {type(item).__name__}"
            )
        leak = _Leak(item, path, secret_salt)
        groups.setdefault(leak.key, []).append(leak)
    # Every secret of the report is masked in every finding (a commit message may quote another leak).
    redactor = Redactor(value for members in groups.values() for leak in members for value in leak.masked)
    yield from (_finding(members, redactor) for members in groups.values())


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


class _Leak:
    """One entry, normalised across the two layouts."""

    __slots__ = ("commit", "date", "item", "key", "line", "masked", "rule", "secret", "version")

    def __init__(self, item: dict[str, Any], path: str, salt: str | None) -> None:
        v8 = "RuleID" in item or "Secret" in item or "Match" in item
        self.version = 8 if v8 else 7
        rule_key = "RuleID" if v8 else "rule"
        rule = _text(item.get(rule_key))
        if not rule:
            raise ValueError(f"not a Gitleaks JSON report: {path}.{rule_key} is missing")
        self.item = item
        self.rule = rule
        secret = _raw_text(item.get("Secret" if v8 else "offender"))
        match = _raw_text(item.get("Match")) if v8 else ""
        redacted = secret.strip() == REDACTED or (not secret and REDACTED in match)
        self.secret = "" if redacted else secret
        masked_values = [self.secret]
        if match and not redacted and (not self.secret or self.secret not in match):
            masked_values.append(match)
        self.masked = [value for value in masked_values if value]
        self.line = _line(item.get("StartLine" if v8 else "lineNumber"))
        self.commit = _text(item.get("Commit" if v8 else "commit"))
        date = _text(item.get("Date" if v8 else "date"))
        self.date = "" if date.startswith(_ZERO_DATE) else date
        if self.secret:
            identity = secret_digest(self.secret, salt)
        else:
            shown = collapse_whitespace(_raw_text(item.get("line")) or match)
            identity = "redacted:" + (
                hashlib.sha256(shown.encode("utf-8", "surrogatepass")).hexdigest()[:32]
                if shown
                else f"line:{self.line}"
            )
        parts = [rule, self.repository, self.file, identity]
        self.key = f"secret:{rule[:200]}:{hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]}"

    @property
    def file(self) -> str:
        return _text(self.item.get("File" if self.version == 8 else "file"))

    @property
    def repository(self) -> str:
        return "" if self.version == 8 else _text(self.item.get("repoURL"))

    @property
    def description(self) -> str:
        return _text(self.item.get("Description")) if self.version == 8 else ""


def _finding(members: list[_Leak], redactor: Redactor) -> NormalizedFinding:
    leak = members[0]
    item, rule, file, repository = leak.item, leak.rule, leak.file, leak.repository
    label = leak.description or rule
    shown = mask(leak.secret) if leak.secret else REDACTED
    at = f" at line {leak.line}" if leak.line is not None else ""
    where = file or "the scanned source"
    commits = list(dict.fromkeys(m.commit for m in members if m.commit))
    lines = sorted({m.line for m in members if m.line is not None})
    tags = item.get("Tags") if leak.version == 8 else str(item.get("tags") or "").split(",")
    v8 = leak.version == 8
    context: dict[str, Any] = {
        "kind": "secret",
        "rule_id": rule,
        "rule_description": leak.description or None,
        "secret": shown,
        "redacted_by_gitleaks": not leak.secret,
        "commits": commits[:_MAX_LISTED] or None,
        "lines": lines[:_MAX_LISTED] or None,
        "occurrences_in_report": len(members),
        "commit_date": leak.date or None,
        "end_line": _line(item.get("EndLine")) if v8 else None,
        "entropy": item.get("Entropy") if isinstance(item.get("Entropy"), int | float) else None,
        "tags": [t.strip() for t in tags if isinstance(t, str) and t.strip()]
        if isinstance(tags, list)
        else None,
        "gitleaks_fingerprint": _text(item.get("Fingerprint")) or None,
        "symlink_file": _text(item.get("SymlinkFile")) or None,
        "gitleaks_version": leak.version,
    }
    link = _text(item.get("Link" if v8 else "leakURL"))
    fields: dict[str, Any] = {
        "source": name,
        "source_id": leak.key,
        "type": rule[:512],
        "title": f"Secret: {label} in {where}",
        "description": (
            f"Gitleaks found a secret ({shown}) in {where}{at}; rule: {label}. The value is not stored here."
        ),
        "severity": secret_severity(rule, leak.description),
        "resource": {"type": "repository", "id": repository[:MAX_ID]} if repository else {},
        "location": {
            "repository": repository[:MAX_ID] or None,
            "path": file[:MAX_ID] or None,
            "line": leak.line,
        }
        if file or repository
        else None,
        "references": [link]
        if link[:8].lower().startswith(("https://", "http://")) and len(link) <= MAX_ID
        else [],
        "remediation": REMEDIATION,
        "status": SourceStatus.open,
        "context": {k: v for k, v in context.items() if v is not None},
        "raw": item,
    }
    fields = redactor.value(fields)  # then cut, so no cut leaves part of a secret
    fields["title"] = fields["title"][:MAX_TITLE].rstrip()
    fields["description"] = fields["description"][:MAX_TEXT]
    return NormalizedFinding.model_validate(fields)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _raw_text(value: Any) -> str:
    """A string as reported (a secret's surrounding spaces are part of it)."""
    return value if isinstance(value, str) else ""


def _line(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000:
        return value
    return None
