"""ASFF ``Resources`` -> the finding's resource (the first one), every resource in context, and exposure.

``resource.public`` is set only when the finding itself shows internet exposure, never guessed from a
check's title (a failed "S3.8 Block Public Access" control says the block is off, not that the bucket is
public). What counts, on any of the finding's resources:

* an EC2 instance or network interface with a globally routable address in ``IpV4Addresses``,
  ``IpV6Addresses``, ``PublicIp`` or ``PrivateIpAddresses[].Association.PublicIp`` (documentation ranges
  such as 198.51.100.0/24, used by GuardDuty's sample findings, are not global);
* ``PubliclyAccessible: true`` (RDS, Redshift, DMS...) or ``Scheme: internet-facing`` (load balancers);
* a product field ending in ``effectivePermission`` equal to ``PUBLIC`` (Macie and GuardDuty S3 findings),
  or Macie's ``S3Object.PublicAccess: true``;
* an Inspector network reachability finding whose title says the port is reachable from the internet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from app.contracts import MAX_ID, Resource
from integrations.sources.asff.fields import as_dict, as_list, compact, get, tags_of, text
from integrations.sources.asff.products import arn_account_region

MAX_CONTEXT_RESOURCES = 20
_IP_KEYS = ("IpV4Addresses", "IpV6Addresses")


@dataclass(slots=True)
class Resources:
    resource: Resource
    listed: list[dict[str, Any]]
    public_reason: str | None


def read_resources(item: dict[str, Any], path: str, account: str, region: str) -> Resources:
    entries = [
        as_dict(entry, f"{path}.Resources[{index}]")
        for index, entry in enumerate(as_list(item.get("Resources"), f"{path}.Resources"))
    ]
    first = entries[0] if entries else {}
    resource_id = text(first.get("Id"))
    arn_account, _ = arn_account_region(resource_id)
    resource = Resource(
        type=text(first.get("Type"))[:256] or None,
        id=resource_id[:MAX_ID] or None,
        account_id=(account or arn_account)[:128] or None,
        region=(text(first.get("Region")) or region)[:64] or None,
        tags=tags_of(first.get("Tags")),
        public=False,
    )
    reason = _public_reason(item, entries)
    if reason:
        resource = resource.model_copy(update={"public": True})
    listed = [
        compact(
            {
                "type": text(entry.get("Type")) or None,
                "id": text(entry.get("Id")) or None,
                "region": text(entry.get("Region")) or None,
                "partition": text(entry.get("Partition")) or None,
            }
        )
        for entry in entries[:MAX_CONTEXT_RESOURCES]
    ]
    return Resources(resource, listed, reason)


def _public_reason(item: dict[str, Any], entries: list[dict[str, Any]]) -> str | None:
    for entry in entries:
        details = entry.get("Details")
        if not isinstance(details, dict):
            continue
        for kind, detail in details.items():
            reason = _detail_reason(kind, detail) if isinstance(detail, dict) else None
            if reason:
                return reason
    fields = item.get("ProductFields")
    if isinstance(fields, dict):
        for key, value in fields.items():
            lowered = key.lower() if isinstance(key, str) else ""
            if lowered.endswith("effectivepermission") and text(value).upper() == "PUBLIC":
                return f"{key} is PUBLIC"
            if lowered == "s3object.publicaccess" and text(value).lower() == "true":
                return "S3Object.PublicAccess is true"
    types = " ".join(t for t in as_list_quiet(item.get("Types")) if isinstance(t, str)).lower()
    title = text(item.get("Title")).lower()
    if "network reachability" in types and "internet" in title:
        return "network reachability: reachable from the internet"
    return None


def _detail_reason(kind: str, detail: dict[str, Any]) -> str | None:
    if detail.get("PubliclyAccessible") is True:
        return f"{kind}.PubliclyAccessible is true"
    if text(detail.get("Scheme")).lower() == "internet-facing":
        return f"{kind}.Scheme is internet-facing"
    addresses: list[Any] = [detail.get("PublicIp")]
    for key in _IP_KEYS:
        addresses.extend(as_list_quiet(detail.get(key)))
    for private in as_list_quiet(detail.get("PrivateIpAddresses")):
        addresses.append(get(private, "Association", "PublicIp"))
    public_ip = next((ip for ip in addresses if _is_global(ip)), None)
    return f"{kind} has the public address {public_ip}" if public_ip else None


def _is_global(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value.strip()).is_global
    except ValueError:
        return False


def as_list_quiet(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
