"""A logging filter that masks secrets: Authorization headers, Basic/Bearer credentials, private keys, password- and
token-like JSON fields, and the values of OCPP messages that set a password (SetVariables BasicAuthPassword, 1.6
ChangeConfiguration AuthorizationKey).

websockets logs every handshake header and every frame at DEBUG, so `-v` would print a station's Basic auth
password. The server and the client hand websockets a logger carrying this filter; the CLIs also put it on their
log handlers, which covers every logger.
"""

from __future__ import annotations

import logging
import re

MASK = "[redacted]"

_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
_SCHEMES = ("basic", "bearer", "digest", "token")
_SECRET_FIELDS = ("password", "passwd", "basicAuthPassword", "secret", "clientSecret", "apiKey", "api_key", "apiToken",
                  "api_token", "accessToken", "access_token", "refreshToken", "refresh_token", "authorizationKey",
                  "token")
_SECRET_SETTERS = ("SetVariables", "BasicAuthPassword", "ChangeConfiguration", "AuthorizationKey")
"""Messages that carry a password in a generic value field."""


def _either(names: tuple[str, ...]) -> str:
    return "|".join(map(re.escape, names))


_HEADER = re.compile(rf"(?i)\b({_either(_HEADERS)})(\s*[:=]\s*)([^\r\n]*)")
_SCHEME = re.compile(rf"(?i)\b({_either(_SCHEMES)})(\s+)([A-Za-z0-9+/=._~-]{{6,}})")
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S)
_SECRET_FIELD = re.compile(rf"""(?i)(\\?["'](?:{_either(_SECRET_FIELDS)})\\?["']\s*:\s*\\?["'])([^"'\\]*)""")
_SETS_SECRET = re.compile(rf"(?i){_either(_SECRET_SETTERS)}")
_VALUE_FIELD = re.compile(r"""(?i)(\\?["'](?:attributeValue|value)\\?["']\s*:\s*\\?["'])([^"'\\]*)""")


def _least(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names in lower case, without those that hold a shorter one (which finds them too)."""
    low = sorted({n.lower() for n in names}, key=len)
    return tuple(n for i, n in enumerate(low) if not any(m in n for m in low[:i]))


# a word of these lists is in every text a pattern matches (the private key's: "private key"), so an ASCII text
# (every OCPP-J frame json.dumps writes) holding none of them in lower case has nothing to mask, and that look costs
# a fraction of the five substitutions (the station logs every frame through redact: a V2X setpoint's CALL and
# answer each paid ~30 us); derived from the patterns' own lists, so a new secret name cannot be skipped
_WORDS = _least(("private key", *_HEADERS, *_SCHEMES, *_SECRET_FIELDS, *_SECRET_SETTERS))


def _may_hold_secret(text: str) -> bool:
    """False only when no pattern can match: ASCII (the patterns' case-insensitive letters match non-ASCII ones such
    as U+0130, U+017F, which lower() does not map) and none of `_WORDS`."""
    if not text.isascii():
        return True
    low = text.lower()
    return any(word in low for word in _WORDS)


def redact(text: str) -> str:
    """`text` with every secret it recognizably contains replaced by [redacted]."""
    if not text or not _may_hold_secret(text):
        return text
    return _masked(text)


def _masked(text: str) -> str:
    """Every pattern's substitution (redact without the look for `_WORDS` first)."""
    text = _PRIVATE_KEY.sub("[redacted private key]", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{MASK}", text)
    if _SETS_SECRET.search(text):
        text = _VALUE_FIELD.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and exception text) with the secrets masked; never drops a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in place, so every handler downstream sees the masked text."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def redacted_logger(name: str) -> logging.Logger:
    """The logger `name` with the redacting filter on it (added once): for websockets' own debug records."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger


def redact_handlers(logger: logging.Logger | None = None) -> None:
    """Put the redacting filter on every handler of `logger` (default: the root logger), so that records of any
    logger that reach them are masked; for a program's logging set-up (after logging.basicConfig)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(_FILTER)
