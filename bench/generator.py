"""A realistic generator of native findings, for tests and benchmarks.

Findings look like what the sources send: AWS findings on ARNs with account, region and tags, container
CVEs on images, code findings with repository and path. ``raw`` carries a source-like document of
roughly 1.5 KB. The same seed gives the same findings.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


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
    rng = random.Random(seed)
    distinct = max(1, int(count * (1 - repeat_ratio)))
    out = list(findings(distinct, seed))
    while len(out) < count:
        out.append(out[rng.randrange(0, distinct)])
    rng.shuffle(out)
    return out
