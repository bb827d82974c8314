"""HTTP hygiene in front of the CSMS REST API: request size caps, JSON-only bodies, and the allowed Host names.

Three defences that do not depend on the token: a body larger than the cap is refused before it is read (by its
Content-Length) or as soon as it passes the cap (chunked), so a peer cannot make the CSMS buffer more than the cap;
state-changing methods take only `application/json` in UTF-8, which a cross-site form or `text/plain` POST cannot
send without a CORS preflight (and the API answers no preflight); and the Host header must name this API, which
defeats DNS rebinding (Starlette's TrustedHostMiddleware, with the names from `allowed_hosts`).
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: the largest legitimate body (a certificate chain, a local list) is far less
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(bind: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Host names the API answers: the loopback names, the bind address (unless it is a wildcard), and `extra`.

    IPv6 literals are put in brackets, as they appear in a Host header. `*.example.com` allows sub-domains; `*`
    alone turns the check off (only behind a proxy that checks Host itself). ValueError for a malformed pattern.
    """
    names = list(LOOPBACK_HOSTS)
    wildcard_bind = bind in ("", "0.0.0.0", "::", "[::]")
    for raw in ([] if wildcard_bind else [bind]) + [n for item in extra for n in item.split(",")]:
        name = raw.strip().lower()
        if not name:
            continue
        if "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*.")):
            raise ValueError(f"allowed host {raw!r}: a wildcard is only `*` or a leading `*.`")
        try:
            if ipaddress.ip_address(name.strip("[]")).version == 6:
                name = f"[{name.strip('[]')}]"
        except ValueError:
            pass
        if name not in names:
            names.append(name)
    return names


class BodyGuard:
    """ASGI middleware: caps every request body at `max_body` bytes and demands UTF-8 JSON for POST/PUT/PATCH.

    The body is read here (at most `max_body` bytes) and replayed to the application, so nothing behind it sees
    more: 413 when Content-Length or the streamed size passes the cap, 400 for a bad Content-Length or a body that
    is not UTF-8, 415 for another content type. Paths under `raw_prefix` (the stations' log uploads) take any
    content type, up to `max_raw` bytes.
    """

    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY, raw_prefix: str | None = None,
                 max_raw: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body
        self.raw_prefix = raw_prefix
        self.max_raw = max_raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check, read (bounded), then hand the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = self.raw_prefix is not None and scope.get("path", "").startswith(self.raw_prefix)
        cap = self.max_raw if raw else self.max_body
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _refuse(scope, receive, send, 400, "malformed Content-Length")
                return
            if int(length) > cap:
                await _refuse(scope, receive, send, 413, f"request body over {cap} bytes")
                return
        is_json = scope["method"] in JSON_METHODS and not raw
        if is_json and not _is_json_utf8(headers.get("content-type", "")):
            await _refuse(scope, receive, send, 415, "the body must be application/json (UTF-8)")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _refuse(scope, receive, send, 413, f"request body over {cap} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if is_json:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                await _refuse(scope, receive, send, 400, "the body is not UTF-8 (RFC 8259)")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


def _is_json_utf8(content_type: str) -> bool:
    """Whether a Content-Type is application/json, with no charset or charset=utf-8."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """Answer with a JSON error and close the connection (the unread body must not be taken as the next request)."""
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)
