"""The boto3 side of ``tocsin pull aws``: credentials, clients, and the paginated reads of each service.

Credentials come from the standard boto3 chain (environment, shared config, container or instance role);
each ``TOCSIN_AWS_ROLE_ARNS`` entry is assumed from them with auto-refreshing credentials, so a pull that
outlives the role session goes on. Clients retry with boto3's adaptive mode (client-side rate limiting
after a throttle, backoff on 5xx); Security Hub's GetFindings (about 3 requests a second) is also paced
here before the first throttle. The readers yield one page of finding documents at a time, as JSON
(timestamps as ISO 8601 text), oldest ``updatedAt`` first, bounded above by the pull's start time.

No database, parser or registry here (import-linter): ``app.delivery.pull_aws`` turns pages into
findings and stores each with its cursor. Nothing here logs or returns a credential: error messages are
built from the error code, the operation and AWS's message, which names principals, never secrets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from botocore.session import get_session

from app.settings import Settings

SECURITYHUB_PAGE = 100  # GetFindings MaxResults limit
LIST_PAGE = 50  # GuardDuty and Macie ListFindings limit, and the most ids GetFindings takes
SECURITYHUB_REQUESTS_PER_SECOND = 3.0  # documented GetFindings rate (burst 6)
ROLE_SESSION_SECONDS = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(\.\d{6})\d+")

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Service:
    """What the puller needs to know about one AWS service."""

    name: str  # as in TOCSIN_AWS_PULL_SERVICES and the cursor key
    client: str  # boto3 client name
    iam: str  # IAM action prefix
    title: str
    format: str  # parser name in the registry
    list_key: str  # the key of GetFindings' finding list (what the parser reads)
    id_key: str
    updated_key: str
    actions: tuple[str, ...]  # every IAM action a pull calls


SECURITYHUB = Service(
    "securityhub",
    "securityhub",
    "securityhub",
    "Security Hub",
    "asff",
    "Findings",
    "Id",
    "UpdatedAt",
    ("GetFindings",),
)
GUARDDUTY = Service(
    "guardduty",
    "guardduty",
    "guardduty",
    "GuardDuty",
    "guardduty",
    "Findings",
    "Id",
    "UpdatedAt",
    ("ListDetectors", "ListFindings", "GetFindings"),
)
MACIE = Service(
    "macie",
    "macie2",
    "macie2",
    "Macie",
    "macie",
    "findings",
    "id",
    "updatedAt",
    ("ListFindings", "GetFindings"),
)
SERVICES = {service.name: service for service in (SECURITYHUB, GUARDDUTY, MACIE)}


class AwsPullError(Exception):
    """An AWS failure described in one line that is safe to print and log."""


@dataclass(frozen=True, slots=True)
class Account:
    """Credentials for one AWS account: the default chain's, or an assumed role's."""

    id: str
    role_arn: str | None
    session: boto3.Session

    @property
    def principal(self) -> str:
        return f"role {self.role_arn}" if self.role_arn else f"the default credentials (account {self.id})"


def client_config(settings: Settings) -> Config:
    return Config(
        retries={"mode": "adaptive", "max_attempts": settings.aws_max_retries},
        user_agent_extra="tocsin-pull",
        connect_timeout=10,
        read_timeout=60,
    )


def default_regions(settings: Settings) -> list[str]:
    """TOCSIN_AWS_REGIONS, else the SDK's default region (AWS_REGION, the profile)."""
    if settings.aws_regions:
        return list(settings.aws_regions)
    region = boto3.Session().region_name
    if not region:
        raise AwsPullError("no AWS region: set TOCSIN_AWS_REGIONS (comma separated) or AWS_REGION")
    return [region]


def open_account(settings: Settings, role_arn: str | None, region: str) -> Account:
    """The default chain's account (sts:GetCallerIdentity), or the role assumed from it (sts:AssumeRole)."""
    base = boto3.Session()
    sts = base.client(
        "sts", region_name=region, endpoint_url=settings.aws_endpoint_url, config=client_config(settings)
    )
    who = f"role {role_arn}" if role_arn else "the default credentials"
    try:
        if role_arn is None:
            identity = sts.get_caller_identity()
            return Account(str(identity["Account"]), None, base)
        return Account(_account_of(role_arn), role_arn, _assumed_session(sts, role_arn, settings))
    except NoCredentialsError as exc:
        raise AwsPullError(
            "no AWS credentials found (standard chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "~/.aws, container or instance role)"
        ) from exc
    except ClientError as exc:
        code, message = _error_parts(exc)
        if role_arn and code in _ACCESS_DENIED:
            raise AwsPullError(
                f"sts:AssumeRole denied for {who}: the caller needs sts:AssumeRole on it and the role's trust "
                f"policy must allow the caller ({code}: {message})"
            ) from exc
        if code in _BAD_CREDENTIALS:
            raise AwsPullError(f"AWS refused {who} ({code}: {message}); check the credential chain") from exc
        action = "sts:AssumeRole" if role_arn else "sts:GetCallerIdentity"
        raise AwsPullError(f"{action} failed for {who} in {region}: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise AwsPullError(f"cannot open {who}: {_botocore_message(exc)}") from exc


def _account_of(role_arn: str) -> str:
    return role_arn.split(":")[4]


def _assumed_session(sts: Any, role_arn: str, settings: Settings) -> boto3.Session:
    def fetch() -> dict[str, str]:
        response = sts.assume_role(
            RoleArn=role_arn,
            RoleSessionName=settings.aws_role_session_name,
            DurationSeconds=ROLE_SESSION_SECONDS,
        )
        credentials = response["Credentials"]
        expiry = credentials["Expiration"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry),
        }

    refreshable = RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    botocore_session = get_session()
    botocore_session._credentials = refreshable  # no public setter for refreshable credentials in botocore
    return boto3.Session(botocore_session=botocore_session)


def make_client(account: Account, service: Service, region: str, settings: Settings) -> Any:
    return account.session.client(
        service.client,
        region_name=region,
        endpoint_url=settings.aws_endpoint_url,
        config=client_config(settings),
    )


class Pacer:
    """At most ``per_second`` calls a second, spaced evenly (the caller is one thread)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


def pages(
    service: Service, client: Any, since: datetime | None, until: datetime, pacer: Pacer | None = None
) -> Iterator[list[Document]]:
    """Pages of findings updated in [since, until] (all up to ``until`` when there is no cursor yet)."""
    if service is SECURITYHUB:
        raw = _securityhub_pages(client, since, until, pacer or Pacer(SECURITYHUB_REQUESTS_PER_SECOND))
    elif service is GUARDDUTY:
        raw = _guardduty_pages(client, since, until)
    else:
        raw = _macie_pages(client, since, until)
    for page in raw:
        if page:
            yield [jsonable(document) for document in page]


def _securityhub_pages(
    client: Any, since: datetime | None, until: datetime, pacer: Pacer
) -> Iterator[list[Document]]:
    window = {"Start": iso(since or EPOCH), "End": iso(until)}
    request: dict[str, Any] = {
        "Filters": {"UpdatedAt": [window]},
        "SortCriteria": [{"Field": "UpdatedAt", "SortOrder": "asc"}],
        "MaxResults": SECURITYHUB_PAGE,
    }
    while True:
        pacer.wait()
        response = client.get_findings(**request)
        yield response.get("Findings") or []
        token = response.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def _guardduty_pages(client: Any, since: datetime | None, until: datetime) -> Iterator[list[Document]]:
    condition = {"LessThanOrEqual": epoch_ms(until)}
    if since is not None:
        condition["GreaterThanOrEqual"] = epoch_ms(since)
    sort = {"AttributeName": "updatedAt", "OrderBy": "ASC"}
    for detector in _detectors(client):
        request: dict[str, Any] = {
            "DetectorId": detector,
            "FindingCriteria": {"Criterion": {"updatedAt": condition}},
            "SortCriteria": sort,
            "MaxResults": LIST_PAGE,
        }
        while True:
            listed = client.list_findings(**request)
            for ids in _chunks(listed.get("FindingIds") or []):
                found = client.get_findings(DetectorId=detector, FindingIds=ids, SortCriteria=sort)
                yield found.get("Findings") or []
            token = listed.get("NextToken")
            if not token:
                break
            request["NextToken"] = token


def _detectors(client: Any) -> Iterator[str]:
    request: dict[str, Any] = {"MaxResults": LIST_PAGE}
    while True:
        response = client.list_detectors(**request)
        yield from response.get("DetectorIds") or []
        token = response.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def _macie_pages(client: Any, since: datetime | None, until: datetime) -> Iterator[list[Document]]:
    condition = {"lte": epoch_ms(until)}
    if since is not None:
        condition["gte"] = epoch_ms(since)
    sort = {"attributeName": "updatedAt", "orderBy": "ASC"}
    request: dict[str, Any] = {
        "findingCriteria": {"criterion": {"updatedAt": condition}},
        "sortCriteria": sort,
        "maxResults": LIST_PAGE,
    }
    while True:
        listed = client.list_findings(**request)
        for ids in _chunks(listed.get("findingIds") or []):
            yield client.get_findings(findingIds=ids, sortCriteria=sort).get("findings") or []
        token = listed.get("nextToken")
        if not token:
            return
        request["nextToken"] = token


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), LIST_PAGE):
        yield ids[start : start + LIST_PAGE]


def jsonable(value: Any) -> Any:
    """boto3's parsed response as the service's JSON: timestamps back to ISO 8601 text (UTC, ``Z``)."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def updated_at(service: Service, document: Document) -> datetime | None:
    """The document's last update time (microseconds kept, more digits dropped); None when unreadable."""
    value = document.get(service.updated_key)
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def finding_id(service: Service, document: Document) -> str | None:
    value = document.get(service.id_key)
    return value if isinstance(value, str) and value else None


_ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException", "Forbidden"}
)
_THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ThrottledException",
        "SlowDown",
        "LimitExceededException",
    }
)
_BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)


def describe_error(exc: Exception, service: Service, account: Account, region: str) -> str:
    """One line for a failed pull of ``service`` in ``region``, naming what to grant or enable."""
    where = f"{account.principal} in {region}"
    if isinstance(exc, ClientError):
        code, message = _error_parts(exc)
        action = f"{service.iam}:{exc.operation_name}"
        if code in _ACCESS_DENIED and "not enabled" in message.lower():
            return f"{service.title} is not enabled for {where}: enable it, or remove {service.name} from TOCSIN_AWS_PULL_SERVICES ({code}: {message})"
        if code in _ACCESS_DENIED:
            needed = ", ".join(f"{service.iam}:{name}" for name in service.actions)
            return f"{action} denied for {where}: grant {needed} ({code}: {message})"
        if code == "InvalidAccessException" or "not subscribed" in message.lower():
            return f"{service.title} is not enabled for {where}: enable it, or remove {service.name} from TOCSIN_AWS_PULL_SERVICES ({code}: {message})"
        if code in _THROTTLED:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return (
                f"{action} throttled for {where} after {attempts} attempt(s); the next pull resumes from the "
                f"cursor (raise TOCSIN_AWS_PULL_INTERVAL or TOCSIN_AWS_MAX_RETRIES) ({code}: {message})"
            )
        if code in _BAD_CREDENTIALS:
            return f"AWS refused the credentials of {where} ({code}: {message}); check the credential chain"
        return f"{action} failed for {where}: {code}: {message}"
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials found for {where}"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set TOCSIN_AWS_REGIONS"
    if isinstance(exc, BotoCoreError):
        return f"{service.title} call failed for {where}: {_botocore_message(exc)}"
    return f"{service.title} pull failed for {where}: {type(exc).__name__}: {_first_line(str(exc))}"


def _error_parts(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error") or {}
    return str(error.get("Code") or "Unknown"), _first_line(str(error.get("Message") or ""))


def _botocore_message(exc: BotoCoreError) -> str:
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _first_line(text: str, limit: int = 300) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
