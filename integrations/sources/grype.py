"""Grype JSON reports (``grype <target> -o json``) -> native findings (pure: no DB, no HTTP).

One finding per match (a vulnerability in a package of the scanned target) and per ignored match
(``ignoredMatches``, written when ignore rules or VEX documents applied: status ``suppressed``, the rules in
``context.ignore_rules``). Layouts read: Grype 0.7 (``matchDetails`` an object, ``links``, ``cvssV2`` /
``cvssV3``) through current releases (``cvss[]``, ``fix``, ``relatedVulnerabilities``, ``epss``, ``risk``).

Identity: the shape the Trivy parser uses, artifact + package + installed version + vulnerability id.
``source_id`` is ``vuln:<id>:<digest>``, the digest 128 bits of SHA-256 over the artifact, the package
name, its version and the vulnerability id; never text, severities, CVSS or dates. The artifact is:

* an image: its repository without tag or digest (``quay.io/org/app:1.2`` -> ``quay.io/org/app``;
  ``docker.io/library/`` and Grype's ``docker:``/``registry:``/``podman:`` prefixes dropped), so the image
  built by the next commit, tagged anew, keeps its unfixed findings instead of opening hundreds of new ones
  (a fix changes the installed version, hence the key). ``resource.id`` keeps the full reference. The Trivy
  parser keeps the tag in its key, so a Grype and a Trivy finding never share a key (they differ anyway:
  Trivy keys on its own target names and PURLs).
* a directory, file or SBOM: the path Grype was given (``"."`` for the current directory, as Trivy's
  ArtifactName).

The package's file (its first location) is not in the key: two copies of one package version in one image
are one finding (one upgrade fixes both), with every location listed in ``context.locations``. Grype also
repeats a match when two matchers find it; repeats are folded the same way, so a report never holds two
findings with one key (DefectDojo merges them too).

Aliases: for each related vulnerability with another id (the CVE of a GHSA advisory), the key the match
would have under that id, ``grype:vuln:<CVE>:<digest>``. Grype reports one vulnerability under either id
depending on its database (GitHub or NVD namespace); the alias keeps the finding when it switches. An alias
that is the key of another match in the same report is left out, so two matches never fold into one.

Severity: Critical/High/Medium/Low as their labels. Negligible (Debian's "unimportant", Ubuntu's
"negligible": the distribution judged it no security problem) -> informational: listed, scored 0, below
every routing threshold. Unknown or absent -> the highest CVSS v3/v4 base score of the vulnerability or its
related entries, x10, else CVSS v2, else ``low``, as the Trivy parser does: an unscored advisory is still a
matched vulnerability.

Fields: title ``<id> in <package> <version>``; description from the vulnerability, else its first related
entry; references ``dataSource``, ``urls`` (``links``), advisory links, then related entries' (http(s)
only, at most 50); remediation ``Upgrade <package> to <versions>.`` when the fix state is ``fixed`` (or
absent, in Grype < 0.10, which gave ``fixedInVersion``);
``observed_at`` the descriptor's timestamp. Context: package, type, PURL, locations, fix versions and
state, namespace, Grype's severity label, CVSS entries, related ids, EPSS, risk, matchers, distribution.
``raw`` is the match.

``parse`` raises ``ValueError`` naming the JSON path (``$.matches[3].vulnerability.id``) when the document
is not a Grype report or a match lacks its vulnerability id or package name; one bad match rejects the
report, since a broken machine-written report cannot be trusted to be complete.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, SEVERITY_LABEL_SCORE, NormalizedFinding, Severity
from integrations.sources.asff.fields import (
    add_url,
    as_dict,
    as_list,
    compact,
    get,
    mapping,
    number,
    texts,
    timestamp,
)

name = "grype"

MAX_LOCATIONS = 20
MAX_ALIASES = 20
_LABELS = {
    "critical": SEVERITY_LABEL_SCORE[Severity.critical],
    "high": SEVERITY_LABEL_SCORE[Severity.high],
    "medium": SEVERITY_LABEL_SCORE[Severity.medium],
    "low": SEVERITY_LABEL_SCORE[Severity.low],
    "negligible": SEVERITY_LABEL_SCORE[Severity.informational],
}
_UNSCORED = SEVERITY_LABEL_SCORE[Severity.low]
_SCHEMES = re.compile(r"^(?:docker|podman|registry|containerd):", re.IGNORECASE)
_DOCKER_HUB = re.compile(r"^(?:(?:index\.)?docker\.io/)(?:library/)?")
_RESOURCE_TYPES = {
    "image": "container_image",
    "directory": "repository",
    "file": "file",
    "sbom-file": "sbom",
    "sbom": "sbom",
    "purl": "package",
    "cpe": "package",
    "snap": "snap",
}


@dataclass(frozen=True, slots=True)
class _Scope:
    artifact: str
    resource: dict[str, Any]
    repository: str | None
    observed: Any
    context: dict[str, Any]


def detect(document: Any) -> bool:
    """A Grype report: ``matches`` is a list beside ``source`` or ``descriptor``."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("matches"), list)
        and ("descriptor" in document or "source" in document)
    )


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every match, then every ignored match, folded by key. Raises ValueError naming the JSON path."""
    if not isinstance(document, dict):
        raise ValueError(
            f"not a Grype JSON report: expected an object with matches, got {type(document).__name__}"
        )
    if "matches" not in document:
        raise ValueError("not a Grype JSON report (grype -o json): $.matches is missing")
    scope = _scope(document)
    entries: list[tuple[dict[str, Any], str, bool]] = []
    for key, suppressed in (("matches", False), ("ignoredMatches", True)):
        for index, match in enumerate(as_list(document.get(key), f"$.{key}")):
            path = f"$.{key}[{index}]"
            entries.append((_object(match, path), path, suppressed))
    keyed = [(_identity(scope, match, path), match, path, suppressed) for match, path, suppressed in entries]
    primary = {source_id for (source_id, _), *_ in keyed}
    findings: dict[str, NormalizedFinding] = {}
    for (source_id, related), match, path, suppressed in keyed:
        existing = findings.get(source_id)
        if existing is not None:
            findings[source_id] = _fold(existing, match)
            continue
        aliases = [f"{name}:{key}" for key in related if key not in primary][:MAX_ALIASES]
        findings[source_id] = _finding(scope, match, path, source_id, aliases, suppressed)
    yield from findings.values()


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _scope(document: dict[str, Any]) -> _Scope:
    source = as_dict(document.get("source"), "$.source")
    kind = _clean(source.get("type")).lower()
    target = source.get("target")
    distro = document.get("distro")
    descriptor = document.get("descriptor")
    observed = timestamp(descriptor.get("timestamp")) if isinstance(descriptor, dict) else None
    context: dict[str, Any] = {"artifact_type": kind or None}
    if isinstance(distro, dict) and _clean(distro.get("name")):
        context["os"] = f"{_clean(distro.get('name'))} {_clean(distro.get('version'))}".strip()
    if kind == "image" or isinstance(target, dict):
        reference = _image_reference(target if isinstance(target, dict) else {})
        artifact = _repository(reference)
        context.update(artifact_name=reference or None, image_id=_clean(get(target, "imageID")) or None)
        resource = {"type": "container_image", "id": reference[:MAX_ID] or None}
        return _Scope(artifact, resource, None, observed, compact(context))
    path = _clean(target).strip('"') if isinstance(target, str) else ""
    context["artifact_name"] = path or None
    resource = {"type": _RESOURCE_TYPES.get(kind, kind or None), "id": path[:MAX_ID] or None}
    repository = (path[:MAX_ID] or None) if kind == "directory" else None
    return _Scope(path, resource, repository, observed, compact(context))


def _image_reference(target: dict[str, Any]) -> str:
    """What the user asked Grype to scan, else the image's first tag, digest or id."""
    candidates = [target.get("userInput"), *_list(target.get("tags")), *_list(target.get("repoDigests"))]
    candidates.append(target.get("imageID"))
    return next((_clean(c) for c in candidates if _clean(c)), "")


def _repository(reference: str) -> str:
    """The image repository: no Grype scheme, no ``docker.io/library/``, no tag, no digest."""
    ref = _SCHEMES.sub("", reference)
    if ref.lower().startswith("sha256:"):
        return ref
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    return _DOCKER_HUB.sub("", ref)


def _identity(scope: _Scope, match: dict[str, Any], path: str) -> tuple[str, list[str]]:
    """The match's source_id and the keys it would have under each related vulnerability id."""
    vulnerability = _object(match.get("vulnerability"), f"{path}.vulnerability")
    vuln_id = _clean(vulnerability.get("id"))
    if not vuln_id:
        raise ValueError(f"{path}.vulnerability.id is missing")
    artifact = _object(match.get("artifact"), f"{path}.artifact")
    package = _clean(artifact.get("name"))
    if not package:
        raise ValueError(f"{path}.artifact.name is missing")
    version = _clean(artifact.get("version"))
    related = [
        _key(scope, package, version, other)
        for other in dict.fromkeys(
            _clean(get(entry, "id")) for entry in _list(match.get("relatedVulnerabilities"))
        )
        if other and other != vuln_id
    ]
    return _key(scope, package, version, vuln_id), related


def _key(scope: _Scope, package: str, version: str, vuln_id: str) -> str:
    digest = hashlib.sha256(orjson.dumps(["vuln", scope.artifact, package, version, vuln_id])).hexdigest()
    return f"vuln:{vuln_id[:200]}:{digest[:32]}"


def _finding(
    scope: _Scope,
    match: dict[str, Any],
    path: str,
    source_id: str,
    aliases: list[str],
    suppressed: bool,
) -> NormalizedFinding:
    vulnerability: dict[str, Any] = match["vulnerability"]
    artifact: dict[str, Any] = match["artifact"]
    vuln_id = _clean(vulnerability.get("id"))
    package, version = _clean(artifact.get("name")), _clean(artifact.get("version"))
    related = [entry for entry in _list(match.get("relatedVulnerabilities")) if isinstance(entry, dict)]
    fix = mapping(vulnerability.get("fix"))
    versions = _list(fix.get("versions")) or [vulnerability.get("fixedInVersion")]  # Grype < 0.10
    fixed = [_clean(v) for v in versions if _clean(v)]
    fix_state = _clean(fix.get("state"))
    locations = _locations(artifact)
    cvss = _cvss(vulnerability)
    severity = _severity(vulnerability, cvss, [_cvss(entry) for entry in related])
    description = _clean(vulnerability.get("description")) or next(
        (_clean(entry.get("description")) for entry in related if _clean(entry.get("description"))), ""
    )
    context = {
        **scope.context,
        "kind": "vulnerability",
        "pkg_name": package,
        "installed_version": version,
        "pkg_type": _clean(artifact.get("type")) or None,
        "language": _clean(artifact.get("language")) or None,
        "purl": _clean(artifact.get("purl")) or None,
        "pkg_path": locations[0] if locations else None,
        "locations": locations,
        "fixed_version": ", ".join(fixed) or None,
        "fix_state": fix_state or None,
        "namespace": _clean(vulnerability.get("namespace")) or None,
        "grype_severity": _clean(vulnerability.get("severity")) or None,
        "cvss": cvss,
        **_best_v3(cvss),
        "related_vulnerabilities": [_clean(e.get("id")) for e in related if _clean(e.get("id"))][:20],
        "epss": _epss(vulnerability.get("epss")),
        "risk": number(vulnerability.get("risk")),
        "known_exploited": _list(vulnerability.get("knownExploited"))[:5] or None,
        "matchers": _matchers(match.get("matchDetails")),
        "ignore_rules": _list(match.get("appliedIgnoreRules"))[:20] if suppressed else None,
    }
    return NormalizedFinding.model_validate(
        {
            "source": name,
            "source_id": source_id,
            "type": vuln_id[:512],
            "title": f"{vuln_id} in {package} {version}".strip()[:MAX_TITLE].rstrip(),
            "description": description[:MAX_TEXT] or None,
            "severity": severity,
            "resource": scope.resource,
            "location": _location(scope, locations),
            "observed_at": scope.observed,
            "references": _references(vulnerability, related),
            "remediation": f"Upgrade {package} to {', '.join(fixed)}."
            if fixed and fix_state in ("fixed", "")
            else None,
            "status": "suppressed" if suppressed else "open",
            "aliases": aliases,
            "context": compact(context),
            "raw": match,
        }
    )


def _fold(existing: NormalizedFinding, match: dict[str, Any]) -> NormalizedFinding:
    """A repeat of a key (another matcher, another copy of the package): add its locations and matchers."""
    artifact = match.get("artifact")
    context = dict(existing.context)
    locations = list(dict.fromkeys([*context.get("locations", []), *_locations(artifact)]))[:MAX_LOCATIONS]
    matchers = list(dict.fromkeys([*context.get("matchers", []), *_matchers(match.get("matchDetails"))]))
    context.update(compact({"locations": locations, "matchers": matchers}))
    return existing.model_copy(update={"context": context})


def _severity(
    vulnerability: dict[str, Any], cvss: list[dict[str, Any]], related: list[list[dict[str, Any]]]
) -> float:
    label = _clean(vulnerability.get("severity")).lower()
    if label in _LABELS:
        return _LABELS[label]
    entries = [*cvss, *(entry for scores in related for entry in scores)]
    for modern in (True, False):
        scores: list[float] = [
            e["score"]
            for e in entries
            if isinstance(e.get("score"), float) and 0 < e["score"] <= 10 and _modern(e) is modern
        ]
        if scores:
            return max(scores) * 10
    return _UNSCORED


def _modern(entry: dict[str, Any]) -> bool:
    return not str(entry.get("version", "")).startswith("2")


def _cvss(vulnerability: dict[str, Any]) -> list[dict[str, Any]]:
    """``cvss[]`` (current) or ``cvssV2``/``cvssV3`` objects (Grype < 0.10) as {version, vector, score...}."""
    entries: list[dict[str, Any]] = []
    raw = [e for e in _list(vulnerability.get("cvss")) if isinstance(e, dict)]
    for version, key in (("2.0", "cvssV2"), ("3.0", "cvssV3")):
        legacy = vulnerability.get(key)
        if isinstance(legacy, dict):
            raw.append({"version": legacy.get("version", version), **legacy})
    for entry in raw[:10]:
        metrics = mapping(entry.get("metrics")) or entry
        entries.append(
            compact(
                {
                    "version": _clean(entry.get("version")) or None,
                    "vector": _clean(entry.get("vector")) or None,
                    "score": number(metrics.get("baseScore")),
                    "source": _clean(entry.get("source")) or None,
                    "type": _clean(entry.get("type")) or None,
                }
            )
        )
    return entries


def _best_v3(cvss: list[dict[str, Any]]) -> dict[str, Any]:
    """The first CVSS v3 entry as ``cvss_v3_score``/``cvss_v3_vector``, the keys the Trivy parser writes."""
    entry = next((e for e in cvss if str(e.get("version", "")).startswith("3") and "score" in e), None)
    if entry is None:
        return {}
    return {"cvss_v3_score": entry["score"], "cvss_v3_vector": entry.get("vector")}


def _epss(value: Any) -> dict[str, Any] | None:
    entry = next((e for e in _list(value) if isinstance(e, dict)), None)
    if entry is None:
        return None
    return compact(
        {
            "score": number(entry.get("epss")),
            "percentile": number(entry.get("percentile")),
            "date": _clean(entry.get("date")) or None,
        }
    )


def _matchers(details: Any) -> list[str]:
    entries = details if isinstance(details, list) else [details]
    return list(dict.fromkeys(_clean(get(d, "matcher")) for d in entries if _clean(get(d, "matcher"))))


def _locations(artifact: Any) -> list[str]:
    paths = [_clean(get(entry, "path")) for entry in _list(get(artifact, "locations"))]
    return list(dict.fromkeys(p[:MAX_ID] for p in paths if p))[:MAX_LOCATIONS]


def _location(scope: _Scope, locations: list[str]) -> dict[str, Any] | None:
    if not (locations or scope.repository):
        return None
    return {"repository": scope.repository, "path": locations[0] if locations else None}


def _references(vulnerability: dict[str, Any], related: list[dict[str, Any]]) -> list[str]:
    references: list[str] = []
    for entry in (vulnerability, *related):
        add_url(references, entry.get("dataSource"))
        for url in texts(entry.get("urls")) + texts(entry.get("links")):
            add_url(references, url)
        for advisory in _list(entry.get("advisories")):
            add_url(references, get(advisory, "link"))
    return references


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _clean(value: Any) -> str:
    """Stripped text without NUL characters (Grype copies them from binaries into versions; PostgreSQL text
    columns refuse them)."""
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""
