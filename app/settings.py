"""Service configuration, read from ``TOCSIN_*`` environment variables.

Nothing here runs at import time: ``load_settings()`` is called by the CLI and by ``create_app`` so that
an invalid value stops start-up with one line naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

DEFAULT_SQLITE_PATH = Path("var") / "tocsin.db"
MIN_BOOTSTRAP_TOKEN_LENGTH = 24
SNS_HOST_PATTERN = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
AWS_PULL_SERVICES = ("securityhub", "guardduty", "macie")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9*-]+:[0-9]{12}:[A-Za-z0-9_.*-]{1,256}$")


class ScoringWeights(BaseSettings):
    """Factors the risk score multiplies into the normalized severity (see README, "Scoring")."""

    model_config = SettingsConfigDict(env_prefix="TOCSIN_SCORE_", extra="ignore")

    public_exposure: float = Field(
        1.5, ge=1.0, le=5.0, description="Factor for a public / internet-facing resource."
    )
    environment_tags: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["env", "environment", "stage"],
        description="Resource tag names read for the environment (comma separated).",
    )
    environment_factors: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {
            "prod": 1.3,
            "production": 1.3,
            "prd": 1.3,
            "live": 1.3,
            "staging": 1.0,
            "stage": 1.0,
            "qa": 0.8,
            "test": 0.7,
            "dev": 0.7,
            "development": 0.7,
            "sandbox": 0.6,
        },
        description="Environment tag value (lower case) -> factor, as JSON.",
    )
    sensitivity_factors: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"none": 1.0, "low": 1.0, "medium": 1.15, "high": 1.3, "critical": 1.5},
        description="Data sensitivity -> factor, as JSON.",
    )
    sensitivity_tags: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "data-classification",
            "data_classification",
            "dataclassification",
            "sensitivity",
        ],
        description="Resource tag names read for data sensitivity (comma separated).",
    )
    sensitivity_tag_values: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {
            "public": "none",
            "internal": "low",
            "confidential": "high",
            "sensitive": "high",
            "restricted": "critical",
            "secret": "critical",
            "pii": "high",
            "phi": "critical",
            "pci": "critical",
        },
        description="Tag value (lower case) -> data sensitivity level, as JSON.",
    )
    confidence_floor: float = Field(
        0.6, ge=0.0, le=1.0, description="Factor at confidence 0; confidence 100 gives 1.0 (linear)."
    )
    recurrence_step: float = Field(
        0.05, ge=0.0, le=0.5, description="Added per doubling of occurrences, capped at 4 doublings."
    )

    @field_validator("environment_tags", "sensitivity_tags", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("environment_factors", "sensitivity_factors", "sensitivity_tag_values", mode="before")
    @classmethod
    def _parse_json_object(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f'must be a JSON object such as {{"prod": 1.3}} ({exc})') from exc
            if not isinstance(value, dict):
                raise ValueError('must be a JSON object such as {"prod": 1.3}')
        return value

    @field_validator("environment_factors", "sensitivity_factors")
    @classmethod
    def _factors_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for key, factor in value.items():
            if not 0.0 <= factor <= 5.0:
                raise ValueError(f"factor for {key!r} must be between 0 and 5, got {factor}")
        return {key.lower(): factor for key, factor in value.items()}


class Settings(BaseSettings):
    """All service settings. Field names map to ``TOCSIN_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore", env_nested_delimiter=None)

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy URL: sqlite:///path, postgresql+psycopg://... or postgresql+asyncpg://...",
    )
    bootstrap_token: SecretStr | None = Field(
        default=None, description="Ensures an admin token with this value exists at start-up."
    )
    # TOCSIN_SECRETS_SALT, not TOCSIN_SECRET_SALT: TOCSIN_SECRET_<NAME> is where channel credentials live
    # (secret_ref), and a channel named SALT must not be able to read (and send) the salt.
    secrets_salt: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC that stands for a leaked secret in secret findings' fingerprints, so a "
        "re-scan deduplicates without storing the secret. Unset: a constant built into Tocsin (stable, but "
        "whoever reads the database and knows it can test guesses of weak secrets). Set a long random value "
        "once: changing it re-keys every secret finding (they come back as new ones; the old ones resolve "
        "on the next complete scan).",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_report_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Limit for whole scanner reports posted to /v1/ingest/{format} (a 10k-CVE Trivy report is ~25 MB).",
    )
    max_batch_findings: int = Field(1000, ge=1, le=10000)
    db_pool_size: int = Field(
        4, ge=1, le=100, description="Connections per process; small pools avoid row-lock pile-ups."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = True
    ingest_retry_attempts: int = Field(
        4, ge=1, le=20, description="Attempts for a batch that hits a deadlock or serialization failure."
    )
    token_touch_seconds: int = Field(
        60,
        ge=0,
        description="A token's last_used_at is written at most this often (saves a write per request).",
    )
    stats_cache_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="How long a slow count of findings (large stores) is reused by /v1/stats.",
    )
    maintenance_interval_seconds: float = Field(
        30.0, gt=0, le=3600, description="How often expired suppressions are reopened."
    )
    scoring: ScoringWeights = Field(default_factory=ScoringWeights)
    eventbridge_api_key_header: str | None = Field(
        "X-Tocsin-Key",
        description="Header POST /v1/ingest/eventbridge also reads an ingest token from (for EventBridge "
        "API-destination connections, which send a fixed header); empty disables it.",
    )
    sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SNS topics POST /v1/ingest/sns accepts (comma separated); '*' matches within the "
        "region or topic-name part. Empty refuses every message.",
    )
    sns_cert_host_pattern: str = Field(
        SNS_HOST_PATTERN,
        description="Regular expression a SigningCertURL or SubscribeURL host must match in full (https only).",
    )
    sns_ca_bundle: Path | None = Field(
        None,
        description="CA bundle (PEM) trusted when fetching SNS signing certificates and SubscribeURLs; "
        "default: the system trust store.",
    )
    sns_http_timeout_seconds: float = Field(
        5.0, gt=0, le=30, description="Timeout for fetching a signing certificate or a SubscribeURL."
    )
    aws_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Regions `tocsin pull aws` reads (comma separated); empty: the AWS SDK's default region.",
    )
    aws_role_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="IAM roles assumed to pull from other accounts (comma separated); empty: the credentials "
        "of the standard AWS chain, in their own account.",
    )
    aws_role_session_name: str = Field(
        "tocsin-pull",
        pattern=r"^[\w+=,.@-]{2,64}$",
        description="Session name of assumed roles (CloudTrail).",
    )
    aws_pull_services: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(AWS_PULL_SERVICES),
        description="Services pulled (comma separated): securityhub, guardduty, macie.",
    )
    aws_pull_interval: float | None = Field(
        None,
        ge=10,
        le=7 * 24 * 3600,
        description="Seconds between scheduled AWS pulls run by `tocsin serve`; unset: no scheduled pull.",
    )
    aws_max_retries: int = Field(
        10, ge=0, le=20, description="Retries of an AWS call after the first attempt (boto3 adaptive mode)."
    )
    aws_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Send every AWS call to this URL instead of AWS (tests, LocalStack); never in production.",
    )

    # -- Delivery: the outbox dispatcher (`tocsin worker` and the one embedded in `tocsin serve`) --------
    dispatcher_embedded: bool = Field(
        True,
        description="Run a dispatcher inside `tocsin serve`; set false on API-only replicas that leave "
        "delivery to `tocsin worker` processes.",
    )
    jira_webhook_secret: SecretStr | None = Field(
        None,
        description="Shared secret of POST /v1/jira/webhook (Jira back-sync), given as ?secret= or the "
        "X-Tocsin-Webhook-Secret header. Unset: the endpoint refuses every call.",
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="Tocsin's external URL; messages link each finding to <url>/v1/findings/<id>.",
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        description="The Slack app's signing secret: POST /v1/slack/interactions (triage buttons) verifies "
        "X-Slack-Signature with it and refuses every request while it is unset.",
    )
    secrets_dir: Path | None = Field(
        None,
        description="Directory of mounted secrets: a channel's secret_ref NAME is read from <dir>/NAME when "
        "TOCSIN_SECRET_<NAME> is not set. Read at send time, never logged.",
    )
    outbound_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts channels may reach although they resolve to loopback, private, link-local or "
        "metadata addresses (comma separated; e.g. an internal webhook relay). Everything else such is refused.",
    )
    delivery_lease_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="How long a worker owns a claimed group; a killed worker's groups are retaken after it.",
    )
    delivery_max_attempts: int = Field(
        8, ge=1, le=100, description="Failed attempts after which a notification is dead (429s excepted)."
    )
    delivery_max_age: float = Field(
        86400.0,
        ge=1,
        le=30 * 86400,
        description="Seconds a group may keep failing; at its next failure after that it goes dead.",
    )
    delivery_backoff_base_seconds: float = Field(
        5.0, gt=0, le=3600, description="First retry delay; doubles per failed attempt (full jitter)."
    )
    delivery_backoff_max_seconds: float = Field(
        900.0, gt=0, le=86400, description="Cap of the retry delay (a Retry-After answer may exceed it)."
    )
    delivery_send_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Outer timeout of one send, whatever the channel's own timeout."
    )
    delivery_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an idle dispatcher looks for due notifications."
    )
    delivery_batch_groups: int = Field(
        50, ge=1, le=1000, description="Groups a dispatcher claims per round trip."
    )
    delivery_concurrency: int = Field(
        8, ge=1, le=256, description="Groups a dispatcher sends at once (`tocsin worker --concurrency`)."
    )
    delivery_default_rate_per_second: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="Messages per second per channel (Slack allows about 1); a channel's "
        "options.rate_per_second overrides it.",
    )

    # -- Abuse limits and HTTP hardening (README "Security and limits") --------------------------------------
    rate_limit_ingest_per_minute: int = Field(
        6000,
        ge=0,
        le=10_000_000,
        description="Ingest requests per minute per token, per API process (token bucket: a burst of a "
        "minute's worth, refilled evenly); 0 disables.",
    )
    rate_limit_read_per_minute: int = Field(
        12000,
        ge=0,
        le=10_000_000,
        description="Read requests (endpoints needing `read`) per minute per token, per API process; 0 disables.",
    )
    max_concurrent_ingest_per_token: int = Field(
        8,
        ge=0,
        le=10_000,
        description="Ingest requests one token may have in progress at once, per API process; 0 disables.",
    )
    request_timeout_seconds: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="A request still unanswered after this long gets 408 (its body had not arrived) or 504 "
        "(still being processed; a database transaction under way is left to finish). 0 disables.",
    )
    hsts: bool = Field(
        False,
        description="Send Strict-Transport-Security (one year, subdomains); only behind HTTPS.",
    )
    cors_allow_credentials: bool = Field(
        False,
        description="Let browsers send cookies / HTTP auth cross-origin (bearer tokens do not need it); "
        "never with a '*' origin.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins browsers may call the API from (comma separated, e.g. https://console.example.com); "
        "empty: CORS off.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/").lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path (e.g. https://console.example.com)"
                )
        if "*" in value and info.data.get("cors_allow_credentials"):
            raise ValueError(
                "'*' cannot be combined with TOCSIN_CORS_ALLOW_CREDENTIALS=true (any site could act with the "
                "user's credentials); list the origins"
            )
        return list(dict.fromkeys(value))

    @field_validator("outbound_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower().strip("[]") for part in value.split(",") if part.strip()]
        return value

    @field_validator("eventbridge_api_key_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid HTTP header name")
        return value

    @field_validator("sns_topic_arns", mode="before")
    @classmethod
    def _split_arns(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sns_topic_arns")
    @classmethod
    def _topic_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _TOPIC_ARN.match(arn):
                raise ValueError(
                    f"{arn!r} is not an SNS topic ARN (arn:aws:sns:<region>:<12-digit account>:<name>; '*' "
                    "is allowed in the region and name only: any AWS account can create a topic)"
                )
        return value

    @field_validator("aws_regions", "aws_role_arns", "aws_pull_services", mode="before")
    @classmethod
    def _split_aws_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("aws_regions")
    @classmethod
    def _aws_regions(cls, value: list[str]) -> list[str]:
        for region in value:
            if not _AWS_REGION.match(region):
                raise ValueError(f"{region!r} is not an AWS region name such as eu-west-1")
        return list(dict.fromkeys(value))

    @field_validator("aws_role_arns")
    @classmethod
    def _aws_role_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _ROLE_ARN.match(arn):
                raise ValueError(
                    f"{arn!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
                )
        return list(dict.fromkeys(value))

    @field_validator("aws_pull_services")
    @classmethod
    def _aws_services(cls, value: list[str]) -> list[str]:
        wanted = [service.lower() for service in value]
        unknown = [service for service in wanted if service not in AWS_PULL_SERVICES]
        if unknown or not wanted:
            raise ValueError(f"must name some of {', '.join(AWS_PULL_SERVICES)} (got {', '.join(value)!r})")
        return list(dict.fromkeys(wanted))

    @field_validator("sns_cert_host_pattern")
    @classmethod
    def _host_pattern(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        if any(pattern.fullmatch(host) for host in ("attacker.example", "169.254.169.254", "localhost")):
            raise ValueError("matches hosts that are not SNS; name the allowed hosts precisely")
        return value

    @field_validator("sns_ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @field_validator("bootstrap_token")
    @classmethod
    def _strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # It is an admin credential: refuse one that could be guessed.
        if value is not None and len(value.get_secret_value()) < MIN_BOOTSTRAP_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} characters, e.g. tcn_$(openssl rand -hex 24)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if "://" not in value or not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(
                "must be a SQLAlchemy URL starting with sqlite:/// or postgresql+psycopg:// "
                f"(got scheme {scheme!r})"
            )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class SettingsError(Exception):
    """A configuration value is invalid; the message is one line naming the variable."""


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line: ``TOCSIN_X: what is wrong`` for each invalid variable."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}{field.upper()}: {message}")
    return " ".join("; ".join(parts).split())  # one line, whatever a message holds


def _describe_source_error(exc: SourceError, prefix: str) -> str:
    # pydantic-settings failed to decode a value as JSON before validation could name it.
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1).upper() if match else "?"
    return f"{prefix}{field}: cannot be parsed (expected JSON)"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise SettingsError with a one-line message on a bad value."""
    try:
        scoring = ScoringWeights()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, "TOCSIN_SCORE_")) from exc
    except SourceError as exc:
        raise SettingsError(_describe_source_error(exc, "TOCSIN_SCORE_")) from exc
    try:
        return Settings(scoring=scoring, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, "TOCSIN_")) from exc
    except SourceError as exc:
        raise SettingsError(_describe_source_error(exc, "TOCSIN_")) from exc
