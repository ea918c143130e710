"""What one SARIF run says about all of its results: the tool, its rules, artifacts, base URIs and repository.

Also the small readers shared by the result builder (tolerant of missing keys, strict about shapes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

SOURCE_FALLBACK = "sarif"
# Tools whose every result is a secret, and the canonical source name of tools whose driver name varies by
# edition ("Semgrep OSS", "Semgrep Pro", "Snyk Open Source"...): the source is part of every key, so a
# rename of the product must not re-key its findings.
SECRET_TOOLS = frozenset(
    {"gitleaks", "trufflehog", "trufflehog3", "detect-secrets", "ggshield", "gitguardian", "secretlint"}
    | {"talisman", "whispers", "kingfisher", "noseyparker", "nosey-parker", "betterleaks"}
)
_CANONICAL_TOOLS = (
    "codeql",
    "semgrep",
    "snyk",
    "checkov",
    "tfsec",
    "trivy",
    "grype",
    "kics",
    "gitleaks",
    "trufflehog",
    "bandit",
    "gosec",
    "spotbugs",
    "eslint",
    "brakeman",
    "hadolint",
    "bearer",
)
_SLUG_JUNK = re.compile(r"[^a-z0-9_.-]+")
_MAX_BASE_DEPTH = 10


def text(value: Any) -> str:
    """A string field, stripped; '' for null, missing or non-string."""
    return value.strip() if isinstance(value, str) else ""


def as_dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"not a SARIF log: {path} must be an object, got {type(value).__name__}")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"not a SARIF log: {path} must be an array, got {type(value).__name__}")
    return value


def get_dict(value: Any, key: str) -> dict[str, Any]:
    """``value[key]`` when both are objects, else {} (optional SARIF objects)."""
    inner = value.get(key) if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


def message_text(message: Any) -> str:
    """A ``message``/``multiformatMessageString``: its text, else its markdown."""
    if isinstance(message, dict):
        return text(message.get("text")) or text(message.get("markdown"))
    return ""


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def tool_slug(name: str) -> str:
    """The finding ``source`` for a tool: its driver name lower-cased to ``[a-z0-9_.-]``, at most 64."""
    slug = _SLUG_JUNK.sub("-", name.lower()).strip("-._")[:64].rstrip("-._")
    for known in _CANONICAL_TOOLS:
        if slug == known or slug.startswith(f"{known}-"):
            return known
    return slug or SOURCE_FALLBACK


def strip_file_scheme(uri: str) -> str:
    """``file:///home/x/a.py`` -> ``/home/x/a.py``; other URIs percent-decoded and otherwise unchanged."""
    if uri[:7].lower() == "file://":
        path = unquote(urlsplit(uri).path) or uri[7:]
        return "/" + path.lstrip("/")
    return unquote(uri) if "%" in uri else uri


def is_absolute(uri: str) -> bool:
    return uri.startswith("/") or bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri))


@dataclass(slots=True)
class Run:
    """The run-level facts every result of the run shares."""

    source: str
    tool_name: str
    tool_version: str | None
    rules_by_index: dict[tuple[int, int], dict[str, Any]]
    rules_by_id: dict[str, dict[str, Any]]
    global_messages: dict[str, Any]
    artifacts: list[Any]
    bases: dict[str, Any]
    working_directory: str
    repository: str | None
    observed_at: datetime | None
    secret_tool: bool
    context: dict[str, Any] = field(default_factory=dict)

    def rule(self, result: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """The reportingDescriptor of a result: by ``rule.index``/``ruleIndex`` (in the driver or the
        extension ``rule.toolComponent.index`` names), else by id in the driver and every extension."""
        reference = get_dict(result, "rule")
        component = get_dict(reference, "toolComponent").get("index")
        index = reference.get("index", result.get("ruleIndex"))
        if isinstance(index, int) and not isinstance(index, bool):
            key = (component + 1 if isinstance(component, int) else 0, index)
            found = self.rules_by_index.get(key)
            if found is not None and (not rule_id or text(found.get("id")) == rule_id):
                return found
        if rule_id:
            return self.rules_by_id.get(rule_id) or self.rules_by_id.get(rule_id.split("/")[0]) or {}
        return {}

    def infer_rule(self, message: str) -> dict[str, Any]:
        """A rule for a result without ``ruleId`` (Gitleaks 7 writes only "<rule name> secret detected"):
        the rule whose id or name starts the message, longest first. Identity never depends on it."""
        best: dict[str, Any] = {}
        best_length = 0
        for rule in self.rules_by_id.values():
            for label in (text(rule.get("id")), text(rule.get("name"))):
                if len(label) > best_length and message.startswith(label):
                    best, best_length = rule, len(label)
        return best

    def base_uri(self, base_id: str) -> str:
        """The URI a ``uriBaseId`` stands for, following chained bases; '' when the log does not say."""
        parts: list[str] = []
        current = base_id
        for _ in range(_MAX_BASE_DEPTH):
            entry = self.bases.get(current)
            if not isinstance(entry, dict):
                break
            parts.append(text(entry.get("uri")))
            current = text(entry.get("uriBaseId"))
            if not current:
                break
        joined = ""
        for part in reversed(parts):
            joined = join_uri(joined, part)
        return joined


def join_uri(base: str, relative: str) -> str:
    if not base or is_absolute(relative):
        return relative
    return base.rstrip("/") + "/" + relative.lstrip("/") if relative else base


def read_run(run: dict[str, Any], path: str) -> Run:
    tool = as_dict(run.get("tool"), f"{path}.tool")
    driver = as_dict(tool.get("driver"), f"{path}.tool.driver")
    tool_name = text(driver.get("name"))
    if not tool_name:
        raise ValueError(f"not a SARIF log: {path}.tool.driver.name is missing")
    components = [driver, *as_list(tool.get("extensions"), f"{path}.tool.extensions")]
    by_index: dict[tuple[int, int], dict[str, Any]] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for position, component in enumerate(components):
        rules = component.get("rules") if isinstance(component, dict) else None
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(rule, dict):
                by_index[(position, index)] = rule
                rule_id = text(rule.get("id"))
                if rule_id and rule_id not in by_id:
                    by_id[rule_id] = rule
    invocation = next(
        (i for i in as_list(run.get("invocations"), f"{path}.invocations") if isinstance(i, dict)), {}
    )
    working = text(get_dict(invocation, "workingDirectory").get("uri"))
    provenance = next(
        (
            p
            for p in as_list(run.get("versionControlProvenance"), f"{path}.versionControlProvenance")
            if isinstance(p, dict)
        ),
        {},
    )
    repository = text(provenance.get("repositoryUri")) or None
    source = tool_slug(tool_name)
    version = text(driver.get("semanticVersion")) or text(driver.get("version")) or None
    context: dict[str, Any] = {"tool": tool_name, "tool_version": version}
    for key, name in (("branch", "branch"), ("revisionId", "revision"), ("revisionTag", "revision_tag")):
        if text(provenance.get(key)):
            context[name] = text(provenance.get(key))
    automation = text(get_dict(run, "automationDetails").get("id"))
    if automation:
        context["automation_id"] = automation
    bases, artifacts = run.get("originalUriBaseIds"), run.get("artifacts")
    return Run(
        source=source,
        tool_name=tool_name,
        tool_version=version,
        rules_by_index=by_index,
        rules_by_id=by_id,
        global_messages=get_dict(driver, "globalMessageStrings"),
        artifacts=artifacts if isinstance(artifacts, list) else [],
        bases=bases if isinstance(bases, dict) else {},
        working_directory=strip_file_scheme(working).rstrip("/") if working else "",
        repository=repository,
        observed_at=timestamp(invocation.get("endTimeUtc")) or timestamp(invocation.get("startTimeUtc")),
        secret_tool=source in SECRET_TOOLS,
        context=context,
    )
