"""Secrets out of logs: a :class:`logging.Filter` that masks credential values and headers.

Credentials reach seaice through the environment only (docs/operations.md).  Every entry point
installs :func:`install_secret_filter` on its log handlers, so that no library's debug output
(HTTP clients print request headers) and no error message can show a token, password or
secret key at any log level.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["SECRET_ENV", "MASK", "SecretFilter", "secrets_from_env", "install_secret_filter", "redact"]

#: Environment variables whose values are secrets.
SECRET_ENV: Final[tuple[str, ...]] = (
    "EARTHDATA_TOKEN", "EARTHDATA_PASSWORD", "SEAICE_STAC_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "SEAICE_AIRFLOW_PASSWORD",
)
#: Variables holding JSON storage options whose secret-looking fields are secrets.
SECRET_OPTION_ENV: Final[tuple[str, ...]] = ("SEAICE_LAKE_OPTIONS", "SEAICE_CATALOG_OPTIONS")
#: Option names (any case, anywhere in a nested options object) whose values are secrets.
_SECRET_KEY_RE: Final[re.Pattern[str]] = re.compile(r"secret|token|password|passwd|credential|session", re.I)
#: What a masked value becomes.
MASK: Final[str] = "***"
#: Shortest value masked (shorter ones would mask ordinary words).
MIN_SECRET_CHARS: Final[int] = 4
#: ``Authorization`` / ``Proxy-Authorization`` header values however a library prints them.
_HEADER_RE: Final[re.Pattern[str]] = re.compile(
    r"""((?:proxy-)?authorization['"]?\s*[:=]\s*['"]?)([^'",}\r\n]+)""", re.I)


def _option_secrets(value: object) -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, str) and _SECRET_KEY_RE.search(str(k)):
                found.append(v)
            else:
                found.extend(_option_secrets(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_option_secrets(v))
    return found


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Secret values of ``env`` (default ``os.environ``), with the basic-auth form of the Earthdata pair."""
    env = os.environ if env is None else env
    found = [env.get(name, "").strip() for name in SECRET_ENV]
    for name in SECRET_OPTION_ENV:
        try:
            found.extend(_option_secrets(json.loads(env.get(name, "") or "{}")))
        except ValueError:
            continue
    user, password = env.get("EARTHDATA_USERNAME", ""), env.get("EARTHDATA_PASSWORD", "")
    if user and password:
        found.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    return sorted({s for s in found if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value and every ``Authorization`` header value masked.

    Examples
    --------
    >>> redact("GET / Headers: {'Authorization': 'Bearer abc123', 'Accept': '*/*'}")
    "GET / Headers: {'Authorization': '***', 'Accept': '*/*'}"
    >>> redact("token s3cr3t failed", ["s3cr3t"])
    'token *** failed'
    """
    out = _HEADER_RE.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        out = out.replace(secret, MASK)
    return out


class SecretFilter(logging.Filter):
    """Masks secrets in every record it sees (message, arguments and exception text).

    Parameters
    ----------
    secrets : iterable of str
        Values to mask (besides ``Authorization`` headers, always masked).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` with its secrets masked; never drops a record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record whose arguments do not fit its format: mask the parts
            message = f"{record.msg} {record.args}"
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text, self.secrets) != text:
                record.exc_text = redact(text, self.secrets)
                record.exc_info = None
        return True


def install_secret_filter(
    handlers: Iterable[logging.Handler] | None = None, env: Mapping[str, str] | None = None
) -> SecretFilter:
    """Add a :class:`SecretFilter` with the environment's secrets to ``handlers`` (default: the root logger's).

    A filter on a handler sees every record the handler emits, whichever logger made it.
    """
    filt = SecretFilter(secrets_from_env(env))
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        for old in [f for f in handler.filters if isinstance(f, SecretFilter)]:
            handler.removeFilter(old)
        handler.addFilter(filt)
    return filt
