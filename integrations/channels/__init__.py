"""Channel kinds, looked up by name: one module per destination behind the same three names.

A channel module has ``kind`` (its name), ``validate(target, options)`` (what the API runs when a user
creates a channel: no secret needed, so a typo is refused before anything is stored) and
``build(target, options, secret) -> Channel`` (what delivery/ runs at send time, with the secret it
resolved). Both raise ``ValueError`` with a message naming the bad field, safe to return as a 422.
Explicit rather than discovered, like the parser registry: adding a kind is a module plus one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import SecretStr

from app.contracts import Channel, OutboundPolicy
from integrations.channels import email, github, jira, pagerduty, slack, webhook


class ChannelModule(Protocol):
    """What every channel module provides (a module satisfies it, as parser modules do)."""

    kind: str

    def validate(self, target: str, options: Mapping[str, Any]) -> None: ...

    def build(
        self, target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy
    ) -> Channel: ...


CHANNEL_KINDS: dict[str, ChannelModule] = {
    module.kind: module for module in (slack, jira, email, github, pagerduty, webhook)
}


def channel_kinds() -> list[str]:
    return sorted(CHANNEL_KINDS)


def _module(kind: str) -> ChannelModule:
    try:
        return CHANNEL_KINDS[kind.strip().lower()]
    except KeyError:
        raise ValueError(
            f"kind: unknown channel kind {kind!r}; supported kinds: {', '.join(channel_kinds())}"
        ) from None


DELIVERY_OPTIONS = {"rate_per_second": (int, float)}
"""Options every channel accepts because delivery/ (not the channel) applies them: pacing."""


def _channel_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options meant for the channel module, after checking the delivery-level ones."""
    own = dict(options or {})
    for name, types in DELIVERY_OPTIONS.items():
        if name in own:
            value = own.pop(name)
            if isinstance(value, bool) or not isinstance(value, types) or value <= 0:
                raise ValueError(f"options.{name}: must be a positive number (messages per second)")
    return own


def validate_channel(kind: str, target: str, options: Mapping[str, Any] | None = None) -> None:
    """Check a channel's kind, target and options as a user gave them; raises ValueError naming the field."""
    _module(kind).validate(target, _channel_options(options))


def build_channel(
    kind: str,
    target: str,
    options: Mapping[str, Any] | None,
    secret: SecretStr | None,
    outbound: OutboundPolicy | None = None,
) -> Channel:
    """A ready channel. ``outbound`` is the deployment's guard policy; every connection the channel
    opens is checked against it at connect time (``integrations.channels._net``)."""
    return _module(kind).build(target, _channel_options(options), secret, outbound or OutboundPolicy())
