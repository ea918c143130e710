"""Channel credentials, resolved at send time from the environment or a mounted file; never stored.

A channel names its secret (``secret_ref`` NAME); the value is ``TOCSIN_SECRET_<NAME>`` or the file
``<TOCSIN_SECRETS_DIR>/<NAME>`` (Kubernetes / Docker secrets), read on every send so a rotated secret
is used at once. Values are wrapped in ``SecretStr`` and never logged or put into an error detail.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr

ENV_PREFIX = "TOCSIN_SECRET_"
_NAME = re.compile(r"^[A-Z0-9_]{1,64}$")


class SecretMissing(Exception):
    """The named secret is not set; the message says where it was looked for (never a value)."""


def resolve_secret(name: str, secrets_dir: Path | None) -> SecretStr:
    if not _NAME.match(name):
        raise SecretMissing(f"secret_ref {name!r} is not a valid name (A-Z, 0-9, _)")
    value = os.environ.get(ENV_PREFIX + name)
    if value:
        return SecretStr(value.strip())
    if secrets_dir is not None:
        path = secrets_dir / name
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise SecretMissing(f"secret {name}: cannot read {path} ({exc.strerror})") from None
        if text:
            return SecretStr(text)
    where = f"{ENV_PREFIX}{name}" + (f" or the file {secrets_dir / name}" if secrets_dir else "")
    raise SecretMissing(f"secret {name} is not set: set {where}")
