"""Which product a Security Hub finding comes from, and the identity AWS services share across paths.

Shared by the ASFF and OCSF parsers (public on purpose): a finding that reaches Tocsin through Security Hub,
in either format, must get the same ``source`` as when it comes from its service directly.

``source`` naming. An AWS service is named by its product segment (``product/aws/guardduty`` ->
``guardduty``; ``securityhub``, ``inspector``, ``macie``, ``config``, ``firewall-manager``,
``access-analyzer``...). A third party is ``<company>-<product>`` from its ProductArn, or just the company
when both are the same (``product/prowler/prowler`` -> ``prowler``, matching the OCSF Prowler parser);
lower case, other characters than ``[a-z0-9_.-]`` become ``-``, at most 64 characters. A custom
BatchImportFindings integration (``product/<account>/default``) is therefore ``<account>-default``. The
ProductArn decides, not ProductName: the name is display text (DefectDojo's samples even show a control
finding of ``product/aws/securityhub`` named ``Config``), the ARN is what Security Hub keys findings by.

Identity of GuardDuty and Macie findings (agreed with their native parsers): ``source_id`` is
``<account>:<region>:<finding id>``, parsed out of the service's finding ARN
(``arn:aws:guardduty:<region>:<account>:detector/<detector>/finding/<id>``,
``arn:aws:macie2:<region>:<account>:finding/<id>``) or, when the ASFF ``Id`` is the bare finding id, built
from the finding's account and region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GUARDDUTY = "guardduty"
MACIE = "macie"
SECURITYHUB = "securityhub"
INSPECTOR = "inspector"
MAX_SOURCE = 64

PRODUCT_ARN = re.compile(
    r"^arn:aws[a-z-]*:securityhub:(?P<region>[^:]*):(?P<account>[^:]*):product(?:v2)?/"
    r"(?P<company>[^/]+)/(?P<product>[^/]+)$"
)
_GUARDDUTY_ARN = re.compile(
    r"^arn:aws[a-z-]*:guardduty:(?P<region>[^:]+):(?P<account>[^:]+):detector/[^/]+/finding/(?P<id>[^/]+)$"
)
_MACIE_ARN = re.compile(r"^arn:aws[a-z-]*:macie2:(?P<region>[^:]+):(?P<account>[^:]+):finding/(?P<id>[^/]+)$")
_BARE_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_NOT_SLUG = re.compile(r"[^a-z0-9_.-]+")
_AWS_COMPANIES = frozenset({"aws", "amazon", "amazon web services"})
# Display names (OCSF metadata.product.name, ASFF ProductName) of AWS services -> their ProductArn segment.
_AWS_NAMES = {
    "security hub": SECURITYHUB,
    "security hub cspm": SECURITYHUB,
    "securityhub": SECURITYHUB,
    "guardduty": GUARDDUTY,
    "amazon guardduty": GUARDDUTY,
    "inspector": INSPECTOR,
    "amazon inspector": INSPECTOR,
    "macie": MACIE,
    "amazon macie": MACIE,
    "config": "config",
    "aws config": "config",
    "firewall manager": "firewall-manager",
    "iam access analyzer": "access-analyzer",
    "access analyzer": "access-analyzer",
    "health": "health",
    "systems manager patch manager": "ssm-patch-manager",
    "iot device defender": "iot-device-defender",
}


@dataclass(frozen=True, slots=True)
class AwsIdentity:
    """The key a GuardDuty or Macie finding has on every path, and the service's own ARN if given."""

    source: str
    source_id: str
    arn: str | None


def slug(value: str) -> str:
    return _NOT_SLUG.sub("-", value.strip().lower()).strip("-._")[:MAX_SOURCE].rstrip("-._")


def source_from_product_arn(product_arn: str) -> str | None:
    """``product/aws/<service>`` -> the service; ``product/<company>/<product>`` -> ``<company>-<product>``."""
    match = PRODUCT_ARN.match(product_arn.strip())
    if match is None:
        return None
    return _join(match["company"], match["product"])


def source_from_names(company: str, product: str) -> str | None:
    """The same naming from display names (OCSF ``metadata.product``), for findings without a ProductArn."""
    company_key, product_key = company.strip().lower(), product.strip().lower()
    if product_key in _AWS_NAMES and (company_key in _AWS_COMPANIES or not company_key):
        return _AWS_NAMES[product_key]
    if not product_key and not company_key:
        return None
    return _join(company, product) if company_key else slug(product) or None


def _join(company: str, product: str) -> str:
    company_slug, product_slug = slug(company), slug(product)
    if company_slug in _AWS_COMPANIES or not company_slug:
        return product_slug or company_slug
    if not product_slug or product_slug == company_slug:
        return company_slug
    return slug(f"{company_slug}-{product_slug}")


def product_region(product_arn: str) -> str:
    match = PRODUCT_ARN.match(product_arn.strip())
    return match["region"] if match else ""


def aws_identity(source: str, finding_id: str, account: str, region: str) -> AwsIdentity | None:
    """GuardDuty/Macie key ``<account>:<region>:<id>``; None for other sources or an unrecognised id.

    The ARN wins over the account and region given beside it: it is the finding's own, while
    ``AwsAccountId`` and the resource region can differ (a delegated administrator, a global resource).
    """
    pattern = {GUARDDUTY: _GUARDDUTY_ARN, MACIE: _MACIE_ARN}.get(source)
    if pattern is None:
        return None
    match = pattern.match(finding_id.strip())
    if match is not None:
        return AwsIdentity(source, f"{match['account']}:{match['region']}:{match['id']}", finding_id.strip())
    if _BARE_ID.match(finding_id.strip()) and account and region:
        return AwsIdentity(source, f"{account}:{region}:{finding_id.strip()}", None)
    return None


def arn_account_region(arn: str) -> tuple[str, str]:
    """``(account, region)`` of any ARN, empty strings when absent (``arn:aws:s3:::bucket``)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return "", ""
    return parts[4], parts[3]
