"""Trivy JSON reports -> native findings (pure: no DB, no HTTP).

Layouts read: schema 2 (``trivy image|fs|repo|sbom|vm --format json``: ``{"SchemaVersion": 2, "ArtifactName",
"ArtifactType", "Metadata", "CreatedAt", "Results": [...]}``), the legacy bare list of results (Trivy < 0.20),
and Kubernetes reports (``{"ClusterName", "Resources": [{"Namespace", "Kind", "Name", "Results"}]}``;
``Findings`` for ``--report summary``; older releases split the resources into ``Vulnerabilities`` and
``Misconfigurations``). Every result class is read: vulnerabilities, misconfigurations, secrets, licenses
(only present when the license scanner was asked for) and ``ExperimentalModifiedFindings`` (VEX/ignore
suppressions shown with ``--show-suppressed``).

Identity. A re-scan must map to the same finding, and a Trivy upgrade or a reworded advisory must not
close and re-open findings (DefectDojo's pain with hashes over volatile text). ``source_id`` is
``<kind>:<id>:<digest>`` where the digest is 128 bits of SHA-256 over these fields only:

* vulnerability: artifact, PkgPath (else the target), PkgName, InstalledVersion, VulnerabilityID and the PURL
  (``PkgIdentifier.PURL``, formerly ``Ref``) without its ``distro`` qualifier. The PURL only appeared in
  newer Trivy releases, so the key *without* the PURL is added as the alias ``trivy:<that key>`` (the
  primary key ``app.pipeline.fingerprint`` gives such a finding): findings stored by an older Trivy are
  matched, not duplicated. The OS version is dropped from OS targets (``img (debian 10.13)`` ->
  ``img (debian)``) and from the PURL, so a distro point release does not re-key every finding. PkgPath
  stands for the target when present because newer Trivy groups jars under a ``Java`` target that older
  releases named by the jar's path, which is PkgPath now.
* misconfiguration: artifact, target, check id (``AVDID`` or ``ID``, canonicalised so ``AVD-DS-0002``,
  ``DS-0002`` and ``DS002`` are one check) and ``CauseMetadata.Resource``. Line numbers are left out (they
  move when a line is added above); several hits of one check in one file without a resource name are told
  apart by their rank in line order (``#2``, ``#3``...). A PASS therefore has the key of the first FAIL.
* secret: artifact, target, RuleID and a digest of the redacted ``Match`` line (whitespace collapsed,
  runs of ``*`` folded), falling back to StartLine when there is no Match; repeats rank as above.
* license: artifact, target, PkgName, FilePath and the license name.

The artifact is the image name (ArtifactName; for an image scanned by id its tag, the name in its OS target,
its digest or its id), the scanned path or repository, or ``<cluster>/<namespace>/<kind>/<name>``. Titles,
descriptions, severities, CVSS and dates are never part of the key.

Resource: images -> ``container_image`` named by the artifact (the target stays in ``context`` and in the
key); filesystem and repository scans -> ``repository`` with ``location`` {repository: ArtifactName, path:
the manifest or file}; SBOM scans -> ``sbom``; Kubernetes -> the Kind, id ``<cluster>/<namespace>/<kind>/
<name>``. ``location.path`` is the package's file (PkgPath) or the target when the target is a file.
``observed_at`` is the report's CreatedAt. ``raw`` is the single entry, never the whole report.

Severity: ``VendorSeverity[SeveritySource]`` when present (1..4 = LOW..CRITICAL, what Trivy itself uses),
else the ``Severity`` label. UNKNOWN becomes the chosen vendor's CVSS score (x10) when there is one, else
``low``: an unscored advisory is still a matched vulnerability, and ``informational`` would hide it below
every routing threshold.

Status: misconfiguration PASS -> resolved (a passing re-scan closes it), FAIL -> open, EXCEPTION ->
suppressed; vulnerability ``not_affected`` -> resolved, every other Trivy status (fixed, affected,
will_not_fix...) -> open with the status in ``context``; suppressed (modified) findings -> suppressed.

Secrets are never stored or forwarded: ``Match`` and ``Code`` are dropped, ``raw`` is an allow-listed copy
(rule, category, severity, title, lines) and only a digest of the Match (which Trivy masks) enters the key.
Misconfigurations lose their quoted code (``CauseMetadata.Code``/``RenderedCause``) for the same reason: a
config line can hold a secret in clear.

``parse`` raises ``ValueError`` with the JSON path of the problem (safe to return to the client) when the
document is not a Trivy report or an entry lacks its id; one bad entry rejects the report, since a
machine-written report with a broken entry cannot be trusted to be complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.contracts import MAX_ID, NormalizedFinding, Resource
from integrations.sources.trivy._entries import read_result
from integrations.sources.trivy._fields import OS_TARGET, Scope, as_dict, as_list, text, timestamp

name = "trivy"

_ARTIFACT_KINDS = {"cyclonedx": "sbom", "spdx": "sbom"}
_K8S_LISTS = ("Resources", "Findings", "Vulnerabilities", "Misconfigurations")
_RESULT_KEYS = ("Vulnerabilities", "Misconfigurations", "Secrets", "Licenses", "Class", "Type")


def detect(document: Any) -> bool:
    """Whether the document looks like a Trivy JSON report (for ``POST /v1/ingest/auto``)."""
    if isinstance(document, dict):
        if "SchemaVersion" in document and any(k in document for k in ("Results", "ArtifactName")):
            return True
        return "ClusterName" in document and any(isinstance(document.get(k), list) for k in _K8S_LISTS)
    if isinstance(document, list) and document:
        first = document[0]
        return isinstance(first, dict) and "Target" in first and any(k in first for k in _RESULT_KEYS)
    return False


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every finding of the report, in report order, one at a time (nothing is folded, so nothing is held
    back). Raises ValueError (safe to show) if it is not a report, possibly after yielding some findings.
    ``secret_salt`` is unused: Trivy masks secrets itself and the key digests the masked line."""
    for scope, results, path in _layout(document):
        for index, result in enumerate(results):
            item_path = f"{path}[{index}]"
            yield from read_result(scope, as_dict(result, item_path), item_path)


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _layout(document: Any) -> Iterator[tuple[Scope, list[Any], str]]:
    if isinstance(document, list) and (detect(document) or not document):
        yield _legacy_scope(document), document, "$"
        return
    if not isinstance(document, dict) or not detect(document):
        raise ValueError("not a Trivy JSON report: expected an object with SchemaVersion and Results")
    version = document.get("SchemaVersion")
    if version not in (None, 0, 2):
        raise ValueError(f"unsupported Trivy SchemaVersion {version!r}; supported: 2 and the legacy list")
    if "ClusterName" in document and not isinstance(document.get("Results"), list):
        yield from _kubernetes(document)
        return
    yield _report_scope(document), as_list(document.get("Results"), "$.Results"), "$.Results"


def _report_scope(doc: dict[str, Any]) -> Scope:
    artifact_type = text(doc.get("ArtifactType"))
    metadata = doc.get("Metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    artifact = text(doc.get("ArtifactName"))
    observed = timestamp(doc.get("CreatedAt"))
    context: dict[str, Any] = {"artifact_type": artifact_type or None, "artifact_name": artifact}
    os_info = metadata.get("OS")
    if isinstance(os_info, dict) and os_info.get("Family"):
        context["os"] = f"{text(os_info.get('Family'))} {text(os_info.get('Name'))}".strip()
    if artifact_type in ("filesystem", "repository"):
        resource = Resource(type="repository", id=artifact[:MAX_ID] or None)
        return Scope(artifact, resource, artifact[:MAX_ID] or None, True, observed, context)
    if artifact_type in ("container_image", ""):
        artifact = artifact or _image_name(metadata, doc.get("Results"))
        context["artifact_name"] = artifact
    kind = _ARTIFACT_KINDS.get(artifact_type, artifact_type) or ("container_image" if artifact else None)
    resource = Resource(type=kind, id=artifact[:MAX_ID] or None)
    return Scope(artifact, resource, None, kind != "container_image", observed, context)


def _image_name(metadata: dict[str, Any], results: Any) -> str:
    """An image scanned by id has no ArtifactName: its tag, else the OS target's name, its digest, its id."""
    tags, digests = metadata.get("RepoTags"), metadata.get("RepoDigests")
    candidates: list[Any] = [*(tags if isinstance(tags, list) else [])]
    for result in results if isinstance(results, list) else []:
        match = OS_TARGET.match(text(result.get("Target"))) if isinstance(result, dict) else None
        candidates.append(match["name"] if match else None)
    candidates += [*(digests if isinstance(digests, list) else []), metadata.get("ImageID")]
    return next((c.strip() for c in candidates if isinstance(c, str) and c.strip()), "")


def _legacy_scope(results: list[Any]) -> Scope:
    image = _image_name({}, results)
    context: dict[str, Any] = {"artifact_type": "container_image" if image else None, "artifact_name": image}
    if image:
        return Scope(image, Resource(type="container_image", id=image[:MAX_ID]), None, False, None, context)
    return Scope("", Resource(), None, True, None, context)


def _kubernetes(doc: dict[str, Any]) -> Iterator[tuple[Scope, list[Any], str]]:
    cluster = text(doc.get("ClusterName"))
    observed = timestamp(doc.get("CreatedAt"))
    for key in _K8S_LISTS:
        for index, entry in enumerate(as_list(doc.get(key), f"$.{key}")):
            path = f"$.{key}[{index}]"
            entry = as_dict(entry, path)
            namespace, kind, obj = (text(entry.get(k)) for k in ("Namespace", "Kind", "Name"))
            artifact = f"{cluster}/{namespace}/{kind}/{obj}"
            context = {"artifact_type": "kubernetes", "cluster": cluster, "k8s_namespace": namespace or None}
            context.update(k8s_kind=kind, k8s_name=obj)
            resource = Resource(type=(kind or "kubernetes")[:256], id=artifact[:MAX_ID])
            scope = Scope(artifact, resource, None, False, observed, context)
            yield scope, as_list(entry.get("Results"), f"{path}.Results"), f"{path}.Results"
