"""The station's file transfers over HTTP(S): firmware downloads (a size cap) and log uploads (PUT), blocking
(`urllib`, run them in a thread), with one typed error for every way they fail."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

TIMEOUT_S = 60.0


class TransferError(Exception):
    """A transfer failed (network, HTTP status, size, scheme)."""


def _check_scheme(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise TransferError(f"unsupported location {url[:40]!r}: http or https only")


def download(url: str, max_bytes: int, context: ssl.SSLContext | None = None, timeout: float = TIMEOUT_S) -> bytes:
    """GET `url` and return its body, at most `max_bytes` (by Content-Length and by what arrives)."""
    _check_scheme(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            length = r.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise TransferError(f"the file is {length} bytes, more than {max_bytes}")
            data: bytes = r.read(max_bytes + 1)
    except urllib.error.HTTPError as e:
        raise TransferError(f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise TransferError(str(getattr(e, "reason", e))) from None
    if len(data) > max_bytes:
        raise TransferError(f"the file is more than {max_bytes} bytes")
    return data


def upload(url: str, data: bytes, context: ssl.SSLContext | None = None, timeout: float = TIMEOUT_S,
           content_type: str = "text/plain; charset=utf-8") -> int:
    """PUT `data` to `url`; the HTTP status (TransferError unless 2xx)."""
    _check_scheme(url)
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        raise TransferError(f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise TransferError(str(getattr(e, "reason", e))) from None
