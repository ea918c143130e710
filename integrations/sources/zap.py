"""OWASP ZAP JSON reports -> native findings (pure: no DB, no HTTP).

Layout read: ZAP's traditional JSON report (``zap-baseline.py -J``, ``zap-full-scan.py -J``, the
``traditional-json`` and ``traditional-json-plus`` report templates): ``{"@programName", "@version",
"created", "site": [{"@name", "@host", "@port", "@ssl", "alerts": [{"pluginid", "alertRef", "alert",
"name", "riskcode", "confidence", "desc", "instances": [{"uri", "method", "param", "attack", "evidence",
"otherinfo"}], "count", "solution", "otherinfo", "reference", "cweid", "wascid", "sourceid", "tags"}]}]}``.
Numbers arrive as strings. ZAP's XML report has the same structure; the endpoint only hands us JSON.

One finding per alert per site, not per instance: a missing header on 300 pages is one problem with one
fix, and per-instance findings would notify 300 times and close and reopen as the spider wanders. The
instances (at most 20, sorted by URI, method and parameter so the list is the same whatever order the
spider took; attack, evidence and other information cut to 200 characters) and their total go to
``context``. DefectDojo's ZAP parser also makes one finding per alert.

Identity: ``source_id`` is ``<site>|<alertRef>``: the site's ``@name`` (scheme, host and port) and the
alert reference (``alertRef``: the plugin id, with a ``-N`` suffix for the variants of one plugin; ZAP <
2.10 has no alertRef and the plugin id stands for it, which is the alertRef of every plugin's first
variant, so upgrading ZAP keeps those keys). Names, descriptions, risk and confidence are never part of it.
ZAP's reports split one alert of one site in two when its instances differ in confidence (the same
``alertRef`` twice); those are folded into one finding: the higher risk and confidence, the instances of
both. For ZAP < 2.10, variants of one plugin (no alertRef to tell them apart) fold the same way, their
names listed in ``context.alert_names``.

Fields. Severity from ``riskcode`` (0 informational, 1 low, 2 medium, 3 high); confidence from
``confidence`` (1 low -> 30, 2 medium -> 60, 3 high -> 90, 4 user confirmed -> 100; 0, a false positive
marked in ZAP, -> 0 with status ``suppressed``). Title ``<alert> on <site>``; description ``desc`` as plain
text (HTML tags dropped, paragraphs kept; the alert's ``otherinfo`` is its first instance's, so it stays
with the instances rather than change the description from scan to scan); remediation ``solution`` likewise;
references the http(s) URLs of ``reference`` and the links of ``tags`` (OWASP Top 10, WSTG). Resource:
type ``web_application``, id the site name. ``observed_at`` the report's ``created`` time (ZAP 2.11+;
``@generated`` is local time without a zone, so it is not used). Context: plugin id, alert ref, CWE and
WASC ids (``-1``/``0`` mean none), risk and confidence as ZAP words them, tags, instance count and the
instances.

Secrets: ``traditional-json-plus`` adds the request and response (headers and bodies: cookies,
``Authorization``) to every instance. They are never stored: ``raw`` is the alert with each instance
reduced to uri, method, param, attack, evidence and otherinfo, at most 500 instances.

``parse`` raises ``ValueError`` naming the JSON path (``$.site[0].alerts[3].pluginid``) when the document
is not a ZAP report or an alert lacks its plugin id; one bad alert rejects the report.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus
from integrations.sources.asff.fields import add_url, as_list, compact, number, text, timestamp
from integrations.sources.values import trim_url

name = "zap"

MAX_INSTANCES = 20
MAX_RAW_INSTANCES = 500
MAX_EVIDENCE = 200
_RISKS = {0: "informational", 1: "low", 2: "medium", 3: "high"}
_RISK_WORDS = {0: "Informational", 1: "Low", 2: "Medium", 3: "High"}
_CONFIDENCE = {0: 0, 1: 30, 2: 60, 3: 90, 4: 100}
_CONFIDENCE_WORDS = {0: "False Positive", 1: "Low", 2: "Medium", 3: "High", 4: "Confirmed"}
_INSTANCE_KEYS = ("id", "uri", "nodeName", "method", "param", "attack", "evidence", "otherinfo")
_BREAKS = re.compile(r"</p>\s*|<br\s*/?>|</li>\s*|</h\d>\s*", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def detect(document: Any) -> bool:
    """A ZAP report: ``site`` is a list beside ZAP's ``@version``/``@programName``/``@generated``."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("site"), list)
        and any(key in document for key in ("@version", "@programName", "@generated"))
    )


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """One finding per alert and site, in report order. Raises ValueError naming the JSON path."""
    if not isinstance(document, dict):
        raise ValueError(
            f"not a ZAP JSON report: expected an object with site, got {type(document).__name__}"
        )
    if "site" not in document:
        raise ValueError("not a ZAP JSON report (traditional-json): $.site is missing")
    observed = timestamp(document.get("created"))
    version = text(document.get("@version"))
    for site_index, site in enumerate(as_list(document.get("site"), "$.site")):
        site_path = f"$.site[{site_index}]"
        site = _object(site, site_path)
        site_name = text(site.get("@name"))
        if not site_name:
            raise ValueError(f"not a ZAP JSON report: {site_path}.@name is missing")
        groups: dict[str, list[dict[str, Any]]] = {}
        for index, alert in enumerate(as_list(site.get("alerts"), f"{site_path}.alerts")):
            path = f"{site_path}.alerts[{index}]"
            alert = _object(alert, path)
            plugin = text(_str(alert.get("pluginid")))
            if not plugin:
                raise ValueError(f"not a ZAP alert: {path}.pluginid is missing")
            groups.setdefault(text(_str(alert.get("alertRef"))) or plugin, []).append(alert)
        for ref, alerts in groups.items():
            yield _finding(site, site_name, ref, alerts, observed, version)


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _finding(
    site: dict[str, Any],
    site_name: str,
    ref: str,
    alerts: list[dict[str, Any]],
    observed: Any,
    version: str,
) -> NormalizedFinding:
    first = alerts[0]
    risk = max(_risk(a) for a in alerts)
    codes = [code for a in alerts if (code := _code(a.get("confidence"), _CONFIDENCE)) is not None]
    confidence_code = max(codes) if codes else None
    confidence = _CONFIDENCE[confidence_code] if confidence_code is not None else None
    instances = [_instance(entry) for alert in alerts for entry in _entries(alert)]
    listed = sorted(dict.fromkeys(instances), key=lambda i: tuple(part or "" for part in i))
    count = sum(_count(a) for a in alerts)
    alert_name = text(first.get("alert")) or text(first.get("name")) or ref
    names = list(dict.fromkeys(text(a.get("alert")) or text(a.get("name")) for a in alerts))
    references: list[str] = []
    tags: dict[str, str] = {}
    for alert in alerts:
        for url in _URL.findall(_str(alert.get("reference"))):
            add_url(references, trim_url(url))
        tags.update(_tags(alert.get("tags")))
    for link in tags.values():
        add_url(references, link)
    description = _plain(first.get("desc"))
    context = {
        "plugin_id": text(_str(first.get("pluginid"))),
        "alert_ref": ref,
        "alert_names": names if len(names) > 1 else None,
        "cwe": _weakness("CWE", first.get("cweid")),
        "wasc": _weakness("WASC", first.get("wascid")),
        "risk": _RISK_WORDS.get(risk),
        "zap_confidence": _CONFIDENCE_WORDS.get(confidence_code) if confidence_code is not None else None,
        "tags": tags,
        "site": site_name,
        "host": text(site.get("@host")) or None,
        "port": text(_str(site.get("@port"))) or None,
        "ssl": text(_str(site.get("@ssl"))).lower() == "true" if site.get("@ssl") is not None else None,
        "systemic": first.get("systemic") if isinstance(first.get("systemic"), bool) else None,
        "instance_count": max(count, len(listed)),
        "instances": [_listed(i) for i in listed[:MAX_INSTANCES]],
        "zap_version": version or None,
    }
    return NormalizedFinding.model_validate(
        {
            "source": name,
            "source_id": f"{site_name}|{ref}"[:MAX_ID],
            "type": ref[:512],
            "title": f"{alert_name} on {site_name}"[:MAX_TITLE].rstrip(),
            "description": description[:MAX_TEXT] or None,
            "severity": _RISKS[risk],
            "resource": {"type": "web_application", "id": site_name[:MAX_ID]},
            "observed_at": observed,
            "confidence": confidence,
            "references": references,
            "remediation": _plain(first.get("solution"))[:MAX_TEXT] or None,
            "status": SourceStatus.suppressed if confidence_code == 0 else SourceStatus.open,
            "context": compact(context),
            "raw": _raw(alerts),
        }
    )


_Instance = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


def _instance(entry: dict[str, Any]) -> _Instance:
    return (
        text(_str(entry.get("uri")))[:MAX_ID] or None,
        text(_str(entry.get("method"))) or None,
        text(_str(entry.get("param")))[:256] or None,
        _short(entry.get("attack")),
        _short(entry.get("evidence")),
        _short(entry.get("otherinfo")),
    )


def _short(value: Any) -> str | None:
    """An instance's text on one line, cut to MAX_EVIDENCE characters."""
    return " ".join(_str(value).split())[:MAX_EVIDENCE] or None


def _listed(instance: _Instance) -> dict[str, str]:
    keys = ("uri", "method", "param", "attack", "evidence", "otherinfo")
    return {key: value for key, value in zip(keys, instance, strict=True) if value}


def _raw(alerts: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """The alert(s) with only the allow-listed instance fields (no request or response)."""
    reduced = []
    for alert in alerts:
        entries = _entries(alert)
        kept = [{k: e[k] for k in _INSTANCE_KEYS if k in e} for e in entries[:MAX_RAW_INSTANCES]]
        copy = {**alert, "instances": kept}
        if len(entries) > MAX_RAW_INSTANCES:
            copy["instances_omitted"] = len(entries) - MAX_RAW_INSTANCES
        reduced.append(copy)
    return reduced[0] if len(reduced) == 1 else reduced


def _plain(value: Any) -> str:
    """ZAP's HTML paragraphs as plain text: tags dropped, paragraphs kept, entities decoded."""
    raw = _str(value)
    if not raw:
        return ""
    spaced = _TAGS.sub("", _BREAKS.sub("\n\n", raw))
    lines = "\n".join(line.strip() for line in html.unescape(spaced).splitlines())
    return _BLANK_LINES.sub("\n\n", lines).strip()


def _tags(value: Any) -> dict[str, str]:
    """``tags``: ``[{"tag", "link"}]`` (JSON) or ``{name: link}``."""
    if isinstance(value, dict):
        return {str(k)[:256]: text(v)[:1024] for k, v in value.items() if isinstance(v, str)}
    tags: dict[str, str] = {}
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict) and text(entry.get("tag")):
            tags[text(entry.get("tag"))[:256]] = text(entry.get("link"))[:1024]
    return tags


def _weakness(prefix: str, value: Any) -> str | None:
    parsed = number(value)
    return f"{prefix}-{int(parsed)}" if parsed is not None and parsed > 0 else None


def _code(value: Any, table: dict[int, Any]) -> int | None:
    """A ZAP code (``"2"`` or 2) that the table knows, else None."""
    parsed = number(value)
    if parsed is not None and int(parsed) == parsed and int(parsed) in table:
        return int(parsed)
    return None


def _risk(alert: dict[str, Any]) -> int:
    """``riskcode``; an alert without one is low, as the Trivy parser treats unscored findings."""
    code = _code(alert.get("riskcode"), _RISKS)
    return 1 if code is None else code


def _entries(alert: dict[str, Any]) -> list[dict[str, Any]]:
    instances = alert.get("instances")
    return [entry for entry in instances if isinstance(entry, dict)] if isinstance(instances, list) else []


def _count(alert: dict[str, Any]) -> int:
    parsed = number(alert.get("count"))
    return int(parsed) if parsed is not None and parsed >= 0 else 0


def _str(value: Any) -> str:
    """ZAP writes numbers as strings; some producers write them as numbers."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value if isinstance(value, str) else ""


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
    return value
