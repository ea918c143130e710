"""SARIF 2.1.0 logs (CodeQL, Semgrep, Snyk, Checkov, tfsec, Grype, Gitleaks, SpotBugs...) -> native findings.

Pure: no DB, no HTTP. One finding per ``runs[].results[]``. Only version 2.1.0 is read; another version is
refused with ``ValueError("SARIF version 2.0.0 is not supported; expected 2.1.0")`` (a log without
``version`` is accepted when its ``$schema`` names 2.1.0).

Fields. ``source`` is the tool: ``tool.driver.name`` lower-cased to ``[a-z0-9_.-]`` (at most 64), with known
tools reduced to their bare name so an edition rename keeps the keys ("Semgrep OSS" -> ``semgrep``, "CodeQL"
-> ``codeql``; "Shell Script Analysis" -> ``shell-script-analysis``). ``type`` is the rule id (``ruleId``,
``rule.id``, or the id of the rule found by ``ruleIndex``/``rule.index``); a result naming no rule gets the
rule whose id or name starts its message (Gitleaks 7 writes only "AWS Access Key secret detected"), else
``sarif-result``. Rule metadata comes from ``tool.driver.rules`` and ``tool.extensions[].rules``: title from
``shortDescription`` (else ``properties.name``, the rule name, the first line of the message), description
is the message (``message.text``, else the rule's ``messageStrings[id]`` with its ``{0}`` arguments) plus
``fullDescription``, remediation is ``help.markdown``/``help.text``, ``helpUri`` is the reference, tags and
CWE ids (from tags such as ``CWE-79`` or ``external/cwe/cwe-079``) go to ``context``.

Location: ``locations[0].physicalLocation`` (``artifactLocation.uri``, or the ``artifacts[index]`` it points
to) and ``region.startLine``. ``file://`` URIs become paths, made relative to the invocation's working
directory when they are under it. A ``uriBaseId`` is resolved through ``originalUriBaseIds``: a relative
base (``src/``) is joined into the path; an absolute base (``file:///home/runner/work/x/``) is not, since
it differs per machine, and the joined URI goes to ``context.artifact_uri``. ``location.repository`` and a
``repository`` resource come from ``versionControlProvenance[0].repositoryUri``; branch and revision go to
``context``. ``observed_at`` is the first invocation's end (else start) time.

Severity, first that applies: ``properties["security-severity"]`` of the result, then of the rule (GitHub's
convention: 0-10, multiplied by 10 so 9.0 -> 90 critical, 7.0 -> 70 high, 4.0 -> 40 medium; a label such as
Semgrep's "MEDIUM" is read as the label); a severity label in ``properties.severity``, ``issue_severity`` or
``cvssv3_baseSeverity`` (dependency-check, sast-scan), result then rule; then ``level`` of the result, else
the rule's ``defaultConfiguration.level``, else ``warning`` (the spec's default): error -> high (80),
warning -> medium (55), note -> low (25), none -> informational (0). Secret results without a
security-severity follow ``secrets.secret_severity`` (critical for cloud keys and private keys, else high).

Status: a suppression whose status is ``accepted`` or absent -> suppressed (``underReview`` and ``rejected``
leave it open); ``kind`` ``pass`` or ``notApplicable`` -> resolved; ``baselineState: absent`` -> resolved
(the result was in the baseline and is gone from this run: fixed); everything else -> open.

Identity (``source_id`` = ``<method>:<rule>:<128-bit digest>``), first rule that the result allows:

1. secret results (below): the rule id, the path and ``secret_digest`` of the secret's value, else of the
   collapsed ``region.snippet`` (Gitleaks 8 puts the value there); with neither, the rules below, a context
   snippet being keyed by its ``secret_digest`` too.
2. ``fingerprints`` (complete, tool-computed identities such as Semgrep's ``matchBasedId/v1``): the rule id
   and the value of the first fingerprint by name.
3. ``partialFingerprints`` with the rule id and path (they are partial by definition): only
   ``primaryLocationLineHash`` when present (GitHub's and CodeQL's: a hash of the line's *content* and its
   context plus an occurrence count, so it survives lines added above), else every partial fingerprint whose
   name mentions neither ``file`` (a whole-file hash changes with any edit elsewhere in the file) nor
   ``column``.
4. the rule id, path and a hash of ``region.snippet.text`` with whitespace collapsed.
5. the rule id, path and logical location (``fullyQualifiedName``, e.g. SpotBugs' method).
6. last resort: the rule id, path and ``startLine`` (Grype and dependency-check, which report a file or a
   package and no code, so the line is constant or absent).

The rule id in a key is the one the log structures (``ruleId``, ``rule.id``, the indexed rule), never the one
inferred from a message; never the message, the level or a title, so rewording changes no key. Two results
with the same key in one log are numbered in line order (``#2``, ``#3``), as the Trivy parser does, except
secrets, which are merged (below).

Secrets. A result is a secret when its tool is a secret scanner (gitleaks, trufflehog, detect-secrets,
ggshield...) or its rule id, name or tags mention a secret, credential, password, token, API key, access key,
private key or the hard-coded-credential CWEs (798, 259, 321); "CSRF token" rules are not. Its value
(``properties.offender``/``secret``/``match``/``raw``, which Gitleaks 7 sets) is masked wherever it occurs,
the snippets keeping the code around it; when the log does not name the value, the snippets
(``region.snippet``, ``contextRegion.snippet``) are masked whole. Masking covers every stored field of
*every* finding of the log, ``raw`` included (``secrets.Redactor``): another rule's result on the same line
quotes the secret too. A secret reported several times in one log (the same value in the same file in
several commits) is one finding, listing its commits and lines in ``context``.

``raw`` is the result (redacted when secret), never the whole log. Malformed structure raises ``ValueError``
naming the JSON path, safe to return to the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.contracts import NormalizedFinding
from integrations.sources.sarif._result import Entry, bounded, merge_secrets, read_result
from integrations.sources.sarif._run import as_dict, as_list, read_run, text
from integrations.sources.secrets import Redactor

name = "sarif"

SUPPORTED_VERSION = "2.1.0"


def detect(document: Any) -> bool:
    """A SARIF log: ``runs`` is an array and ``version`` (any, so that 2.0.0 gets the clear error) or a
    ``$schema`` naming SARIF says so."""
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        return False
    version, schema = document.get("version"), document.get("$schema")
    if isinstance(version, str) and version[:2] in ("1.", "2."):
        return True
    return isinstance(schema, str) and "sarif" in schema.lower()


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every result of every run, in log order. Raises ValueError (safe to show) if it is not SARIF 2.1.0."""
    entries: list[Entry] = []
    for run_index, run in enumerate(_runs(document)):
        path = f"$.runs[{run_index}]"
        info = read_run(as_dict(run, path), path)
        for index, result in enumerate(as_list(run.get("results"), f"{path}.results")):
            result_path = f"{path}.results[{index}]"
            entries.append(read_result(info, as_dict(result, result_path), len(entries), secret_salt))
    yield from _build(entries)


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _runs(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        raise ValueError(
            f"not a SARIF log: expected an object with version and runs, got {type(document).__name__}"
        )
    if "runs" not in document:
        raise ValueError("not a SARIF log: $.runs is missing")
    version = document.get("version")
    schema = text(document.get("$schema"))
    if version is None and SUPPORTED_VERSION not in schema:
        raise ValueError(f"not a SARIF log: $.version is missing (expected {SUPPORTED_VERSION!r})")
    if version is not None and version != SUPPORTED_VERSION:
        shown = version if isinstance(version, str) else repr(version)
        raise ValueError(f"SARIF version {shown[:40]} is not supported; expected {SUPPORTED_VERSION}")
    return as_list(document.get("runs"), "$.runs")


def _build(entries: list[Entry]) -> list[NormalizedFinding]:
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.source, entry.key), []).append(entry)
    keyed: list[tuple[Entry, str]] = []
    for (_source, key), members in groups.items():
        if len(members) == 1:
            keyed.append((members[0], key))
        elif members[0].secret:
            keyed.append((merge_secrets(members), key))
        else:
            ranked = sorted(members, key=lambda e: (e.line if e.line is not None else -1, e.order))
            keyed.append((ranked[0], key))
            keyed.extend((member, f"{key}#{rank}") for rank, member in enumerate(ranked[1:], start=2))
    keyed.sort(key=lambda pair: pair[0].order)
    # Every secret of the log is masked in every finding: a code result on the line of a secret quotes it too.
    redactor = Redactor(value for entry in entries for value in entry.secret_values)
    return [
        NormalizedFinding.model_validate(
            {**bounded(redactor.value(entry.fields)), "source": entry.source, "source_id": key}
        )
        for entry, key in keyed
    ]
