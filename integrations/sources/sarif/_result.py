"""One SARIF result -> the fields of one native finding, plus the key it is known by (see the package doc)."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, SourceStatus, parse_severity
from integrations.sources.sarif._run import (
    Run,
    get_dict,
    is_absolute,
    join_uri,
    message_text,
    strip_file_scheme,
    text,
    timestamp,
)
from integrations.sources.secrets import collapse_whitespace, mask, secret_digest, secret_severity

NO_RULE = "sarif-result"
LEVEL_SCORES = {"error": 80.0, "warning": 55.0, "note": 25.0, "none": 0.0}
DEFAULT_LEVEL = "warning"  # SARIF §3.27.10: a result with no level and no rule configuration is a warning
_LABEL_PROPERTIES = ("severity", "issue_severity", "cvssv3_baseSeverity")
_SECRET_PROPERTIES = ("offender", "secret", "match", "raw")
_SECRET_WORDS = re.compile(
    r"secret|credential|passw(or)?d|token|api[-_ ]?key|private[-_ ]?key|access[-_ ]?key|cwe-0*(798|259|321)\b",
    re.IGNORECASE,
)
_NOT_SECRET = re.compile(r"csrf|xsrf", re.IGNORECASE)  # "missing CSRF token" is not a leaked token
_CWE = re.compile(r"cwe[-/_:]?0*(\d+)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{(\d+)\}")
# Whole-file hashes change with any edit of the file, columns and commit metadata (Gitleaks 8 puts commitSha,
# author, date... there) are no identity.
_VOLATILE_PARTIAL = re.compile(r"file|column|commit|author|email|date|message", re.IGNORECASE)
_PREFERRED_PARTIAL = "primaryLocationLineHash"
_MAX_REFERENCES = 50
_MAX_LISTED = 20


@dataclass(slots=True)
class Entry:
    """A result read but not yet built: duplicates of its key are merged or numbered first."""

    source: str
    key: str
    secret: bool
    line: int | None
    order: int
    commit: str | None
    secret_values: list[str]
    fields: dict[str, Any]


@dataclass(slots=True)
class _Where:
    path: str
    full_uri: str | None
    line: int | None
    end_line: int | None
    snippet: str
    context_snippet: str
    logical: str


def read_result(run: Run, result: dict[str, Any], order: int, salt: str | None = None) -> Entry:
    """Tolerant of missing optional objects: a result needs nothing but to be an object."""
    explicit_rule = text(result.get("ruleId")) or text(get_dict(result, "rule").get("id"))
    rule = run.rule(result, explicit_rule)
    # The rule as the log structures it (never inferred from the message): the only rule in the key.
    key_rule = (explicit_rule or text(rule.get("id")) or NO_RULE)[:512]
    message = _render(result, rule, run)
    if not rule and not explicit_rule:
        rule = run.infer_rule(message)
    rule_id = (explicit_rule or text(rule.get("id")) or NO_RULE)[:512]
    where = _where(run, result)
    properties = get_dict(result, "properties")
    rule_properties = get_dict(rule, "properties")
    tags = _tags(rule_properties.get("tags"), properties.get("tags"))
    rule_name = _rule_name(rule, rule_properties)
    secret = run.secret_tool or _mentions_secret((rule_id, rule_name, *tags))

    secret_value = ""
    secret_values: list[str] = []
    if secret:
        offender = next((v for k, v in properties.items() if k.lower() in _SECRET_PROPERTIES and text(v)), "")
        secret_value = offender if isinstance(offender, str) else ""
        # The value when the tool names it (masked inside the snippet, which keeps its code around it);
        # else the snippets whole, since where the secret sits in them is unknown.
        secret_values = (
            [secret_value] if secret_value else [where.snippet.strip(), where.context_snippet.strip()]
        )
    key, method = _identity(result, key_rule, where, secret, secret_value, salt)

    heading = text(get_dict(rule, "shortDescription").get("text")) or text(rule_properties.get("name"))
    named = rule_name if rule_name != rule_id or secret else ""
    heading = (heading or named or message.split("\n", 1)[0]).rstrip(". ") or rule_id
    shown_secret = (
        mask(secret_value or where.snippet.strip() or where.context_snippet.strip()) if secret else ""
    )
    if secret:
        title = f"Secret: {heading} in {where.path}" if where.path else f"Secret: {heading}"
    else:
        title = f"{heading} in {where.path}" if where.path else heading
    description = _description(message, rule, heading)
    if secret:
        at = f" at line {where.line}" if where.line is not None else ""
        found = (
            f"{run.tool_name} found a secret ({shown_secret}) in {where.path or 'the scanned source'}{at}."
        )
        description = f"{found} The value is not stored here.\n\n{description}".strip()
    context = _context(run, result, rule, rule_properties, where, tags, rule_name, method)
    commit = text(properties.get("commit")) or text(get_dict(result, "partialFingerprints").get("commitSha"))
    if secret:
        context.update(kind="secret", secret=shown_secret, commit=commit or None)
    severity = _severity(properties, rule_properties)
    if severity is None:
        severity = secret_severity(rule_id, rule_name) if secret else _level_score(result, rule)
    fields: dict[str, Any] = {
        "type": rule_id,
        "title": title or rule_id,
        "description": description or None,
        "severity": severity,
        "resource": {"type": "repository", "id": run.repository[:MAX_ID]} if run.repository else {},
        "location": _location(run, where),
        "observed_at": run.observed_at,
        "first_observed_at": timestamp(get_dict(result, "provenance").get("firstDetectionTimeUtc")),
        "references": _references(rule, result),
        "remediation": message_text(get_dict(rule, "help")) or None,
        "status": _status(result),
        "context": context,
        "raw": result,
    }
    return Entry(run.source, key, secret, where.line, order, commit or None, secret_values, fields)


def bounded(fields: dict[str, Any]) -> dict[str, Any]:
    """Text fields cut to the contract's limits (after redaction, so no cut can leave part of a secret)."""
    title = str(fields["title"])[:MAX_TITLE].rstrip() or str(fields["type"])[:MAX_TITLE]
    description, remediation = fields.get("description"), fields.get("remediation")
    return {
        **fields,
        "title": title,
        "description": description[:MAX_TEXT] if isinstance(description, str) else None,
        "remediation": remediation[:MAX_TEXT] if isinstance(remediation, str) else None,
    }


def _render(result: dict[str, Any], rule: dict[str, Any], run: Run) -> str:
    """The result's message: its text, else the rule's (or the tool's) message string with arguments."""
    message = result.get("message")
    direct = message_text(message)
    if direct or not isinstance(message, dict):
        return direct
    message_id = text(message.get("id"))
    template = message_text(get_dict(rule, "messageStrings").get(message_id)) or message_text(
        run.global_messages.get(message_id)
    )
    given = message.get("arguments")
    arguments: list[Any] = given if isinstance(given, list) else []

    def argument(match: re.Match[str]) -> str:
        index = int(match[1])
        return str(arguments[index]) if index < len(arguments) else match[0]

    return _PLACEHOLDER.sub(argument, template).replace("{{", "{").replace("}}", "}").strip()


def _where(run: Run, result: dict[str, Any]) -> _Where:
    locations = result.get("locations")
    first = (
        locations[0] if isinstance(locations, list) and locations and isinstance(locations[0], dict) else {}
    )
    physical = get_dict(first, "physicalLocation")
    artifact = get_dict(physical, "artifactLocation")
    uri, base_id = text(artifact.get("uri")), text(artifact.get("uriBaseId"))
    index = artifact.get("index")
    if not uri and isinstance(index, int) and 0 <= index < len(run.artifacts):
        listed = get_dict(run.artifacts[index], "location")
        uri, base_id = text(listed.get("uri")), base_id or text(listed.get("uriBaseId"))
    path, full_uri = uri, None
    if base_id and uri and not is_absolute(uri):
        base = run.base_uri(base_id)
        if base and not is_absolute(base):
            path = join_uri(base, uri)
        elif base:
            full_uri = join_uri(base, uri)
    path = strip_file_scheme(path) if path else ""
    if run.working_directory and path.startswith(run.working_directory + "/"):
        path = path[len(run.working_directory) + 1 :]
    region = get_dict(physical, "region")
    snippet = get_dict(region, "snippet").get("text")
    context_snippet = get_dict(get_dict(physical, "contextRegion"), "snippet").get("text")
    logical_locations = first.get("logicalLocations")
    logical = logical_locations[0] if isinstance(logical_locations, list) and logical_locations else None
    logical_name = (
        text(logical.get("fullyQualifiedName")) or text(logical.get("name"))
        if isinstance(logical, dict)
        else ""
    )
    return _Where(
        path,
        full_uri,
        _line(region.get("startLine")),
        _line(region.get("endLine")),
        snippet if isinstance(snippet, str) else "",
        context_snippet if isinstance(context_snippet, str) else "",
        logical_name,
    )


def _line(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000:
        return value
    return None


def _identity(
    result: dict[str, Any], rule_id: str, where: _Where, secret: bool, secret_value: str, salt: str | None
) -> tuple[str, str]:
    """(key, method): the first of the rules in the package docstring that the result allows."""
    uri = where.path or where.full_uri or ""
    snippet = collapse_whitespace(where.snippet)
    if secret:
        value = secret_value or snippet
        if value:
            return _key("secret", rule_id, ["secret", rule_id, uri, secret_digest(value, salt)]), "secret"
        snippet = collapse_whitespace(where.context_snippet)  # keyed below by its salted digest
    fingerprints = _string_map(result.get("fingerprints"))
    if fingerprints:
        name = sorted(fingerprints)[0]
        return _key("fp", rule_id, ["fingerprint", rule_id, name, fingerprints[name]]), f"fingerprint:{name}"
    partial = _string_map(result.get("partialFingerprints"))
    if _PREFERRED_PARTIAL in partial:
        partial = {_PREFERRED_PARTIAL: partial[_PREFERRED_PARTIAL]}
    else:
        partial = {k: v for k, v in partial.items() if not _VOLATILE_PARTIAL.search(k)}
    if partial:
        names = sorted(partial)
        parts = ["partial", rule_id, uri, [[n, partial[n]] for n in names]]
        return _key("pfp", rule_id, parts), "partial:" + ",".join(names)
    if snippet and secret:
        return _key(
            "snippet", rule_id, ["secret-snippet", rule_id, uri, secret_digest(snippet, salt)]
        ), "snippet"
    if snippet:
        digest = hashlib.sha256(snippet.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return _key("snippet", rule_id, ["snippet", rule_id, uri, digest]), "snippet"
    if where.logical:
        return _key("logical", rule_id, ["logical", rule_id, uri, where.logical]), "logical"
    return _key("line", rule_id, ["line", rule_id, uri, where.line]), "line"


def _key(method: str, rule_id: str, parts: list[Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]
    return f"{method}:{rule_id[:200]}:{digest}"


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}


def _tags(*sources: Any) -> list[str]:
    tags: list[str] = []
    for source in sources:
        if isinstance(source, list):
            tags.extend(t.strip() for t in source if isinstance(t, str) and t.strip())
    return list(dict.fromkeys(tags))


def _rule_name(rule: dict[str, Any], properties: dict[str, Any]) -> str:
    return text(properties.get("name")) or text(rule.get("name")) or text(rule.get("id"))


@functools.lru_cache(maxsize=4096)  # once per rule, not once per result
def _mentions_secret(labels: tuple[str, ...]) -> bool:
    return any(_SECRET_WORDS.search(label) and not _NOT_SECRET.search(label) for label in labels if label)


def _severity(*property_bags: dict[str, Any]) -> float | None:
    """security-severity (result, then rule; 0-10 -> x10, or a label), then a severity label property."""
    for bag in property_bags:
        score = _cvss_like(bag.get("security-severity"))
        if score is not None:
            return score
    for bag in property_bags:
        for key in _LABEL_PROPERTIES:
            score = _cvss_like(bag.get(key))
            if score is not None:
                return score
    return None


def _cvss_like(value: Any) -> float | None:
    """A 0-10 score (number or numeric string) times ten, or a severity label; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            try:
                return parse_severity(value)
            except ValueError:
                return None
    if isinstance(value, int | float) and not math.isnan(value) and 0 <= value <= 10:
        return round(float(value) * 10, 3)
    return None


def _level_score(result: dict[str, Any], rule: dict[str, Any]) -> float:
    level = text(result.get("level")) or text(get_dict(rule, "defaultConfiguration").get("level"))
    return LEVEL_SCORES.get(level or DEFAULT_LEVEL, LEVEL_SCORES[DEFAULT_LEVEL])


def _status(result: dict[str, Any]) -> SourceStatus:
    suppressions = result.get("suppressions")
    if isinstance(suppressions, list):
        for suppression in suppressions:
            if isinstance(suppression, dict) and text(suppression.get("status")) in ("", "accepted"):
                return SourceStatus.suppressed
    if text(result.get("kind")) in ("pass", "notApplicable"):
        return SourceStatus.resolved
    if text(result.get("baselineState")) == "absent":
        return SourceStatus.resolved
    return SourceStatus.open


def _description(message: str, rule: dict[str, Any], heading: str) -> str:
    full = message_text(get_dict(rule, "fullDescription"))
    parts = [message]
    if full and full != heading and full not in message:
        parts.append(full)
    return "\n\n".join(p for p in parts if p)


def _references(rule: dict[str, Any], result: dict[str, Any]) -> list[str]:
    candidates = [rule.get("helpUri"), result.get("hostedViewerUri")]
    urls = [
        c.strip()
        for c in candidates
        if isinstance(c, str)
        and c.strip()[:8].lower().startswith(("https://", "http://"))
        and len(c) <= MAX_ID
    ]
    return list(dict.fromkeys(urls))[:_MAX_REFERENCES]


def _location(run: Run, where: _Where) -> dict[str, Any] | None:
    if not (where.path or run.repository):
        return None
    return dict(
        repository=run.repository[:MAX_ID] if run.repository else None,
        path=where.path[:MAX_ID] or None,
        line=where.line,
    )


def _context(
    run: Run,
    result: dict[str, Any],
    rule: dict[str, Any],
    rule_properties: dict[str, Any],
    where: _Where,
    tags: list[str],
    rule_name: str,
    method: str,
) -> dict[str, Any]:
    suppression = next((s for s in result.get("suppressions") or [] if isinstance(s, dict)), {})
    cwes = sorted(
        {f"CWE-{int(m[1])}" for tag in tags for m in [_CWE.search(tag)] if m and "cwe" in tag.lower()}
    )
    optional: dict[str, Any] = {
        "rule_id": text(result.get("ruleId")) or text(rule.get("id")) or None,
        "rule_name": rule_name or None,
        "tags": tags[:_MAX_LISTED] or None,
        "cwe_ids": cwes or None,
        "level": text(result.get("level"))
        or text(get_dict(rule, "defaultConfiguration").get("level"))
        or None,
        "result_kind": text(result.get("kind")) or None,
        "baseline_state": text(result.get("baselineState")) or None,
        "precision": text(rule_properties.get("precision")) or None,
        "security_severity": rule_properties.get("security-severity")
        or get_dict(result, "properties").get("security-severity"),
        "end_line": where.end_line,
        "logical_location": where.logical or None,
        "artifact_uri": where.full_uri,
        "suppression_kind": text(suppression.get("kind")) or None,
        "suppression_justification": text(suppression.get("justification")) or None,
        "identity": method,
    }
    return {**run.context, **{k: v for k, v in optional.items() if v is not None}}


def _join(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))[:_MAX_LISTED]


def merge_secrets(members: list[Entry]) -> Entry:
    """One finding for a secret reported several times (other commits, other lines of the same file)."""
    first = members[0]
    context = dict(first.fields["context"])
    commits = _join([m.commit or "" for m in members])
    lines = sorted({m.line for m in members if m.line is not None})
    context.update(
        commits=commits or None, lines=lines[:_MAX_LISTED] or None, occurrences_in_report=len(members)
    )
    context.pop("commit", None)
    fields = {**first.fields, "context": context}
    values = [value for member in members for value in member.secret_values]
    return Entry(first.source, first.key, True, first.line, first.order, first.commit, values, fields)
