"""A realistic generator of native findings, for tests and benchmarks.

Findings look like what the sources send: AWS findings on ARNs with account, region and tags, container
CVEs on images, code findings with repository and path. ``raw`` carries a source-like document of
roughly 1.5 KB. The same seed gives the same findings.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

ACCOUNTS = [f"{random.Random(i).randrange(10**11, 10**12)}" for i in range(12)]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
TEAMS = ["payments", "identity", "platform", "data", "web", "mobile", "search"]
ENVS = ["prod", "prod", "staging", "dev", "test"]
SEVERITIES = ["informational", "low", "low", "medium", "medium", "medium", "high", "high", "critical"]
GUARDDUTY_TYPES = [
    "Recon:EC2/PortProbeUnprotectedPort",
    "UnauthorizedAccess:EC2/SSHBruteForce",
    "CryptoCurrency:EC2/BitcoinTool.B!DNS",
    "Backdoor:EC2/C&CActivity.B",
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
    "Policy:S3/BucketBlockPublicAccessDisabled",
]
CONTROL_TYPES = ["S3.8", "EC2.19", "IAM.4", "RDS.3", "CloudTrail.1", "KMS.4", "Lambda.1", "EC2.2"]
PACKAGES = [
    "openssl",
    "libxml2",
    "zlib",
    "curl",
    "glibc",
    "log4j-core",
    "jackson-databind",
    "lodash",
    "requests",
]
RULES = ["python.lang.security.audit.eval-detected", "generic.secrets.aws-access-key", "js.xss.innerhtml"]
WORDS = [
    "exposure",
    "attacker",
    "traffic",
    "credential",
    "bucket",
    "instance",
    "policy",
    "network",
    "access",
    "anomalous",
    "port",
]


def _resource_arn(rng: random.Random, account: str, region: str) -> tuple[str, str]:
    kind = rng.choice(["instance", "bucket", "role", "db", "function"])
    if kind == "instance":
        return "AwsEc2Instance", f"arn:aws:ec2:{region}:{account}:instance/i-{rng.getrandbits(64):016x}"
    if kind == "bucket":
        return "AwsS3Bucket", f"arn:aws:s3:::{rng.choice(TEAMS)}-{rng.getrandbits(32):08x}"
    if kind == "role":
        return "AwsIamRole", f"arn:aws:iam::{account}:role/{rng.choice(TEAMS)}-{rng.getrandbits(24):06x}"
    if kind == "db":
        return (
            "AwsRdsDbInstance",
            f"arn:aws:rds:{region}:{account}:db:{rng.choice(TEAMS)}-{rng.getrandbits(24):06x}",
        )
    return "AwsLambdaFunction", f"arn:aws:lambda:{region}:{account}:function:fn-{rng.getrandbits(32):08x}"


_WORD_BITS = len(WORDS).bit_length()


def _sentence(rng: random.Random, words: int) -> str:
    # ``rng.choice(WORDS)`` unrolled (same draws, same result: choice -> _randbelow -> getrandbits with
    # rejection), ~4x faster; sentences are most of the generator's time.
    count, bits, draw, picked = len(WORDS), _WORD_BITS, rng.getrandbits, []
    for _ in range(words):
        r = draw(bits)
        while r >= count:
            r = draw(bits)
        picked.append(WORDS[r])
    return " ".join(picked).capitalize() + "."


def make_finding(rng: random.Random, serial: int, now: datetime | None = None) -> dict[str, Any]:
    """One native finding as a client would post it (``raw`` included)."""
    now = now or datetime(2026, 11, 1, tzinfo=UTC)
    account, region = rng.choice(ACCOUNTS), rng.choice(REGIONS)
    team, env = rng.choice(TEAMS), rng.choice(ENVS)
    severity = rng.choice(SEVERITIES)
    observed = (now - timedelta(minutes=rng.randrange(0, 60 * 24 * 30))).isoformat()
    kind = rng.random()
    tags = {"team": team, "env": env, "cost-center": f"cc-{rng.randrange(100, 999)}"}
    if kind < 0.4:
        rtype, rid = _resource_arn(rng, account, region)
        ftype = rng.choice(GUARDDUTY_TYPES)
        finding: dict[str, Any] = {
            "source": "guardduty",
            "source_id": f"{serial:08x}{rng.getrandbits(96):024x}",
            "type": ftype,
            "title": f"{ftype.split('/')[-1]} on {rid.rsplit('/', 1)[-1][:40]}",
            "resource": {
                "type": rtype,
                "id": rid,
                "account_id": account,
                "region": region,
                "tags": tags,
                "public": rng.random() < 0.2,
            },
        }
    elif kind < 0.7:
        rtype, rid = _resource_arn(rng, account, region)
        control = rng.choice(CONTROL_TYPES)
        finding = {
            "source": "securityhub",
            "type": f"aws-foundational-security-best-practices/v/1.0.0/{control}",
            "title": f"{control} control failed for {rid.rsplit(':', 1)[-1][:40]} #{serial}",
            "resource": {
                "type": rtype,
                "id": rid + f"-{serial}",
                "account_id": account,
                "region": region,
                "tags": tags,
            },
        }
    elif kind < 0.9:
        pkg = rng.choice(PACKAGES)
        cve = f"CVE-20{rng.randrange(18, 26)}-{rng.randrange(1000, 99999)}"
        image = f"{rng.choice(TEAMS)}/{rng.choice(['api', 'worker', 'web'])}:{serial % 5000}"
        finding = {
            "source": "trivy",
            "type": cve,
            "title": f"{pkg}: {_sentence(rng, 6)}",
            "resource": {"type": "container_image", "id": f"registry.example.com/{image}", "tags": tags},
            "references": [f"https://nvd.nist.gov/vuln/detail/{cve}"],
            "context": {
                "package": pkg,
                "installed_version": f"1.{rng.randrange(0, 20)}.{rng.randrange(0, 9)}",
                "fixed_version": f"1.{rng.randrange(20, 30)}.0",
            },
        }
    else:
        rule = rng.choice(RULES)
        finding = {
            "source": "semgrep",
            "type": rule,
            "title": f"{rule.rsplit('.', 1)[-1]} in handler {serial}",
            "location": {
                "repository": f"github.com/acme/{team}",
                "path": f"src/{team}/mod_{serial}.py",
                "line": rng.randrange(1, 800),
            },
        }
    finding["severity"] = severity
    finding["description"] = _sentence(rng, 30)
    finding["observed_at"] = observed
    finding["confidence"] = rng.randrange(40, 101)
    finding["raw"] = {
        "schemaVersion": "2.0",
        "id": f"gen-{serial}",
        "accountId": account,
        "region": region,
        "createdAt": observed,
        "updatedAt": observed,
        "service": {
            "count": rng.randrange(1, 50),
            "archived": False,
            "action": {
                "actionType": "NETWORK_CONNECTION",
                "remoteIpDetails": {
                    "ipAddressV4": f"198.51.100.{rng.randrange(1, 255)}",
                    "country": {"countryName": "Nowhere"},
                    "organization": {"asn": str(rng.randrange(1000, 65000)), "isp": "Example ISP"},
                },
            },
        },
        "detail": _sentence(rng, 120),
    }
    return finding


def findings(count: int, seed: int = 7, start: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` distinct findings with serials ``start ..``; the same seed and serials repeat exactly."""
    for serial in range(start, start + count):
        yield make_finding(random.Random(seed * 1_000_003 + serial), serial)


def with_repeats(count: int, repeat_ratio: float, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` findings of which ``repeat_ratio`` re-send earlier ones (the same serials)."""
    distinct = max(1, int(count * (1 - repeat_ratio)))
    return spread_repeats(list(findings(distinct, seed)), count, seed)


def spread_repeats(distinct: list[dict[str, Any]], count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``distinct`` padded to ``count`` with re-sends of its items, shuffled (what ``with_repeats`` does)."""
    rng = random.Random(seed)
    out = list(distinct)
    while len(out) < count:
        out.append(out[rng.randrange(0, len(distinct))])
    rng.shuffle(out)
    return out


def blocked_repeats(
    distinct: list[dict[str, Any]], count: int, repeat_ratio: float, block: int = 10_000, seed: int = 7
) -> list[dict[str, Any]]:
    """``count`` findings in blocks of ``block``: each block sends new findings from ``distinct`` in order
    and re-sends (``repeat_ratio`` of the block) findings already sent, in this block or an earlier one,
    shuffled within the block. Any prefix of whole blocks holds the same share of repeats, so a run
    that stops early at a time cap still sends the intended mix."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    used = 0
    while len(out) < count:
        size = min(block, count - len(out))
        fresh = min(len(distinct) - used, max(1, round(size * (1 - repeat_ratio))))
        part = distinct[used : used + fresh]
        used += fresh
        part += [distinct[rng.randrange(used)] for _ in range(size - fresh)]
        rng.shuffle(part)
        out.extend(part)
    return out


def _findings_chunk(args: tuple[int, int, int]) -> bytes:
    count, seed, start = args
    return orjson.dumps(list(findings(count, seed, start)))


def findings_parallel(
    count: int, seed: int = 7, start: int = 0, workers: int | None = None
) -> list[dict[str, Any]]:
    """``list(findings(count, seed, start))``, generated by a process pool (the generator is ~7k/s a core).

    Exactly the same findings, except that datetimes already are ISO strings as they would be on the wire.
    """
    workers = workers or os.cpu_count() or 1
    if count < 4000 or workers < 2:
        return orjson.loads(orjson.dumps(list(findings(count, seed, start))))  # type: ignore[no-any-return]
    step = -(-count // (workers * 4))
    parts = [(min(step, count - offset), seed, start + offset) for offset in range(0, count, step)]
    out: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for blob in pool.map(_findings_chunk, parts):
            out.extend(orjson.loads(blob))
    return out


def clone_finding(template: dict[str, Any], serial: int) -> dict[str, Any]:
    """A distinct finding that differs from ``template`` only in what makes its identity.

    Used to fill a store with a million findings quickly (bench/growth.py builds the matching rows from
    the template's rows); the same change must be applied to the model in ``bench.rows.clone_row``.
    """
    clone = dict(template)
    if clone.get("source_id"):
        clone["source_id"] = f"b{serial:09d}-{clone['source_id']}"
    elif (clone.get("resource") or {}).get("id"):
        clone["resource"] = {**clone["resource"], "id": f"{clone['resource']['id']}~b{serial}"}
    else:
        location = clone["location"]
        clone["location"] = {**location, "path": f"{location['path']}~b{serial}"}
    return clone


TRIVY_PACKAGES = [
    (
        "alpine",
        "os-pkgs",
        ["musl", "busybox", "openssl", "libcrypto1.1", "zlib", "freetype", "libxml2", "curl"],
    ),
    ("debian", "os-pkgs", ["libc6", "libssl1.1", "libsqlite3-0", "perl-base", "tar", "gzip", "libgnutls30"]),
    ("jar", "lang-pkgs", ["log4j-core", "jackson-databind", "commons-compress", "netty-codec", "snakeyaml"]),
    ("pip", "lang-pkgs", ["requests", "urllib3", "django", "pyyaml", "jinja2", "cryptography"]),
    ("npm", "lang-pkgs", ["lodash", "minimist", "axios", "express", "moment", "node-fetch"]),
]
TRIVY_SEVERITIES = ["LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL", "UNKNOWN"]


def _trivy_vulnerability(rng: random.Random, serial: int, pkg: str, path: str | None) -> dict[str, Any]:
    year = rng.randrange(2016, 2026)
    cve = f"CVE-{year}-{rng.randrange(1000, 60000)}"
    v2 = round(rng.uniform(1.0, 10.0), 1)
    v3 = round(rng.uniform(1.0, 10.0), 1)
    vuln: dict[str, Any] = {
        "VulnerabilityID": cve,
        "PkgName": pkg,
        "InstalledVersion": f"{rng.randrange(0, 4)}.{rng.randrange(0, 30)}.{rng.randrange(0, 9)}-r{serial % 7}",
        "FixedVersion": f"{rng.randrange(4, 8)}.{rng.randrange(0, 30)}.{rng.randrange(0, 9)}",
        "Layer": {"DiffID": f"sha256:{rng.getrandbits(256):064x}"},
        "SeveritySource": rng.choice(["nvd", "redhat", "ghsa", "alpine"]),
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "Title": f"{pkg}: {_sentence(rng, 9)}",
        "Description": _sentence(rng, 45),
        "Severity": rng.choice(TRIVY_SEVERITIES),
        "CweIDs": [f"CWE-{rng.randrange(20, 1000)}"],
        "CVSS": {
            "nvd": {
                "V2Vector": "AV:N/AC:M/Au:N/C:N/I:N/A:P",
                "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H",
                "V2Score": v2,
                "V3Score": v3,
            },
            "redhat": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:H", "V3Score": v3},
        },
        "References": [
            f"https://{rng.choice(['nvd.nist.gov/vuln/detail', 'security-tracker.debian.org/tracker', 'ubuntu.com/security', 'access.redhat.com/security/cve', 'github.com/advisories'])}/{cve}?r={i}"
            for i in range(rng.randrange(3, 22))
        ],
        "PublishedDate": f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T03:15:00Z",
        "LastModifiedDate": f"{min(year + 1, 2026)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T19:50:00Z",
    }
    if path is not None:
        vuln["PkgPath"] = path
    return vuln


def trivy_report(vulnerabilities: int, seed: int = 11, artifact: str = "shop/api:1.42") -> dict[str, Any]:
    """A Trivy JSON report (SchemaVersion 2, the shape of samples/scanners/trivy/scheme_2_many_vulns.json)
    of one container image holding ``vulnerabilities`` vulnerabilities spread over OS and language
    package targets; about 2 KB a vulnerability, like real reports."""
    rng = random.Random(seed)
    results: list[dict[str, Any]] = []
    left, serial = vulnerabilities, 0
    for kind, klass, packages in TRIVY_PACKAGES:
        share = left if kind == TRIVY_PACKAGES[-1][0] else min(left, vulnerabilities // len(TRIVY_PACKAGES))
        left -= share
        if klass == "os-pkgs":
            target = f"{artifact} ({kind} 3.{rng.randrange(9, 19)}.{rng.randrange(0, 9)})"
        else:
            target = f"app/{kind}/lockfile-{rng.randrange(1, 99)}"
        vulns = []
        for _ in range(share):
            pkg = rng.choice(packages)
            path = f"app/libs/{pkg}-{serial % 50}.{kind}" if klass == "lang-pkgs" else None
            vulns.append(_trivy_vulnerability(rng, serial, pkg, path))
            serial += 1
        results.append({"Target": target, "Class": klass, "Type": kind, "Vulnerabilities": vulns})
    return {
        "SchemaVersion": 2,
        "ArtifactName": artifact,
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "alpine", "Name": "3.18.4"}, "RepoTags": [artifact]},
        "Results": results,
    }
