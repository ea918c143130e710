"""``resource`` of a GuardDuty finding -> the native ``Resource`` plus a little context.

One reader per ``resourceType``; each names the resource by its ARN (taken from the finding when GuardDuty
gives one, else built from partition, region and account, the same ARN Security Hub puts in the ASFF
``Resources[].Id``) so ownership rules can match it, and uses the ASFF resource type names. An unknown
resource type keeps its GuardDuty name and no id: the finding is still identified by its own id.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.contracts import MAX_ID
from integrations.sources.guardduty._fields import dict_at, dig, get, list_at, tags, text


@dataclass(slots=True)
class Where:
    """Where the finding happened: from the finding, else from its ARN, else from the event envelope."""

    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str | None:
        """``arn:<partition>:<service>:<region>:<account>:<resource>``, or None when a part is unknown."""
        if not resource or (regional and not self.region) or (account and not self.account):
            return None
        region = self.region if regional else ""
        owner = self.account if account else ""
        return f"arn:{self.partition}:{service}:{region}:{owner}:{resource}"


@dataclass(slots=True)
class Mapped:
    type: str | None = None
    id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    public: bool = False
    context: dict[str, Any] = field(default_factory=dict)


_Reader = Callable[[dict[str, Any], Where], Mapped]


def map_resource(resource: dict[str, Any], where: Where) -> Mapped:
    kind = text(get(resource, "resourceType"))
    reader = _READERS.get(kind.lower().replace("_", ""))
    mapped = reader(resource, where) if reader else Mapped(type=kind[:256] or None)
    instance_id = text(dig(resource, "instanceDetails", "instanceId"))
    if instance_id and "instance_id" not in mapped.context:
        mapped.context["instance_id"] = instance_id
    if mapped.id and len(mapped.id) > MAX_ID:
        mapped.id = None
    return mapped


def _instance(resource: dict[str, Any], where: Where) -> Mapped:
    details = dict_at(resource, "instanceDetails")
    instance_id = text(get(details, "instanceId"))
    public_ips = [
        ip for interface in list_at(details, "networkInterfaces") if (ip := text(get(interface, "publicIp")))
    ]
    context: dict[str, Any] = {"instance_id": instance_id or None}
    if public_ips:
        context["public_ips"] = public_ips[:10]
    return Mapped(
        type="AwsEc2Instance",
        id=(where.arn("ec2", f"instance/{instance_id}") or instance_id) if instance_id else None,
        tags=tags(get(details, "tags")),
        public=any(_routable(ip) for ip in public_ips),
        context=context,
    )


def _routable(address: str) -> bool:
    """A globally routable address: documentation ranges (GuardDuty's sample findings use 198.51.100.0)
    and private ranges do not make an instance reachable from the internet; the ASFF parser agrees."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def _access_key(resource: dict[str, Any], where: Where) -> Mapped:
    return Mapped(type="AwsIamAccessKey", id=principal_id(resource, where), context=principal(resource))


def principal_id(resource: dict[str, Any], where: Where) -> str | None:
    """The IAM user's ARN when GuardDuty names an IAM user (or the root), else ASFF's access key id form.

    A user's path is not in the finding, so the ARN assumes the default path ``/``; roles and federated
    sessions are named by their access key (``AWS::IAM::AccessKey:<id>``, as Security Hub does).
    """
    details = dict_at(resource, "accessKeyDetails")
    user_type, user_name = text(get(details, "userType")), text(get(details, "userName"))
    if user_type == "IAMUser" and user_name:
        arn = where.arn("iam", f"user/{user_name}", regional=False)
        if arn:
            return arn
    if user_type == "Root":
        arn = where.arn("iam", "root", regional=False)
        if arn:
            return arn
    key_id = text(get(details, "accessKeyId"))
    if key_id:
        return f"AWS::IAM::AccessKey:{key_id}"
    return text(get(details, "principalId")) or None


def principal(resource: dict[str, Any]) -> dict[str, Any]:
    details = dict_at(resource, "accessKeyDetails")
    found = {
        "access_key_id": text(get(details, "accessKeyId")),
        "principal_id": text(get(details, "principalId")),
        "user_name": text(get(details, "userName")),
        "user_type": text(get(details, "userType")),
    }
    return {key: value for key, value in found.items() if value}


def _buckets(resource: dict[str, Any], where: Where) -> Mapped:
    buckets = [bucket for bucket in list_at(resource, "s3BucketDetails") if isinstance(bucket, dict)]
    arns = [arn for bucket in buckets if (arn := _bucket_arn(bucket, where))]
    public = any(
        text(dig(bucket, "publicAccess", "effectivePermission")).upper() == "PUBLIC" for bucket in buckets
    )
    context: dict[str, Any] = {"s3_buckets": arns[:20]}
    objects = [
        key
        for bucket in buckets
        for item in list_at(bucket, "s3ObjectDetails")
        if (key := text(get(item, "key")))
    ]
    if objects:
        context["s3_objects"] = objects[:20]
    context.update(principal(resource))
    return Mapped(
        type="AwsS3Bucket",
        id=arns[0] if arns else None,
        tags=tags(get(buckets[0], "tags")) if buckets else {},
        public=public,
        context=context,
    )


def _bucket_arn(bucket: dict[str, Any], where: Where) -> str | None:
    arn = text(get(bucket, "arn"))
    if arn:
        return arn
    name = text(get(bucket, "name"))
    return where.arn("s3", name, regional=False, account=False) if name else None


def _named(
    kind: str, details_key: str, arn_key: str, name_key: str, service: str, resource_prefix: str
) -> _Reader:
    """A reader for resources named by an ARN field, else by a name the ARN can be built from."""

    def read(resource: dict[str, Any], where: Where) -> Mapped:
        details = dict_at(resource, details_key)
        name = text(get(details, name_key))
        arn = text(get(details, arn_key)) or (where.arn(service, resource_prefix + name) if name else None)
        context = {"resource_name": name} if name else {}
        return Mapped(type=kind, id=arn or name or None, tags=tags(get(details, "tags")), context=context)

    return read


def _eks(resource: dict[str, Any], where: Where) -> Mapped:
    mapped = _named("AwsEksCluster", "eksClusterDetails", "arn", "name", "eks", "cluster/")(resource, where)
    workload = dict_at(resource, "kubernetesDetails", "kubernetesWorkloadDetails")
    for key, name in (("namespace", "kubernetes_namespace"), ("name", "kubernetes_workload")):
        if value := text(get(workload, key)):
            mapped.context[name] = value
    if user := text(dig(resource, "kubernetesDetails", "kubernetesUserDetails", "username")):
        mapped.context["kubernetes_user"] = user
    return mapped


def _ecs(resource: dict[str, Any], where: Where) -> Mapped:
    mapped = _named("AwsEcsCluster", "ecsClusterDetails", "arn", "name", "ecs", "cluster/")(resource, where)
    if task := text(dig(resource, "ecsClusterDetails", "taskDetails", "definitionArn")):
        mapped.context["ecs_task_definition"] = task
    return mapped


def _container(resource: dict[str, Any], where: Where) -> Mapped:
    """A standalone container: named by its image (stable across restarts), the container id in context."""
    details = dict_at(resource, "containerDetails")
    image, container_id = text(get(details, "image")), text(get(details, "id"))
    context = {"container_id": container_id, "container_name": text(get(details, "name"))}
    return Mapped(
        type="Container",
        id=image or container_id or None,
        context={key: value for key, value in context.items() if value},
    )


_rds = _named(
    "AwsRdsDbInstance", "rdsDbInstanceDetails", "dbInstanceArn", "dbInstanceIdentifier", "rds", "db:"
)
_READERS: dict[str, _Reader] = {
    "instance": _instance,
    "ec2instance": _instance,
    "accesskey": _access_key,
    "s3bucket": _buckets,
    "s3object": _buckets,
    "ekscluster": _eks,
    "ecscluster": _ecs,
    "container": _container,
    "rdsdbinstance": _rds,
    "rds": _rds,
    "rdslimitlessdb": _named(
        "AwsRdsDbShardGroup",
        "rdsLimitlessDbDetails",
        "dbShardGroupArn",
        "dbShardGroupIdentifier",
        "rds",
        "shard-group:",
    ),
    "lambda": _named(
        "AwsLambdaFunction", "lambdaDetails", "functionArn", "functionName", "lambda", "function:"
    ),
}
