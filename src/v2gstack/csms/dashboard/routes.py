"""The dashboard's routes: `/` and `/static/*` (the pages, with a strict Content-Security-Policy), `GET /api/live`
(server-sent events: live sessions and station changes, one event per `interval` seconds; `app.state.close_streams()`
ends them for a server that stops) and
`GET /api/dashboard/summary` (authorization and Plug & Charge outcomes, stations, trust anchors' expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from ..auth import ApiAuth, Role
from ..metrics import metrics_of
from ..service import Csms
from .live import Subscriber, live_hub

STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "index.html": "text/html; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}
MAX_STREAM_S = 600.0  # an event stream ends after this long; the browser's EventSource reconnects by itself


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def add_dashboard(app: FastAPI, csms: Csms, auth: ApiAuth, *, interval: float = 1.0) -> None:
    """Mount the dashboard (the hub starts watching messages now)."""
    hub = live_hub(csms)
    metrics = metrics_of(csms)
    metrics.add_gauge("v2gstack_csms_dashboard_streams", "Open dashboard event streams", lambda: hub.subscribers)
    viewer = Depends(auth.require(Role.VIEWER))
    files = {name: _static(name) for name in STATIC}  # read once: the package is not edited while it runs
    closing = asyncio.Event()
    app.state.close_streams = closing.set  # the server calls it before it stops: open streams end at once

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(files["index.html"], media_type=STATIC["index.html"], headers=SECURITY_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, "no such file")
        return Response(files[name], media_type=STATIC[name], headers=SECURITY_HEADERS)

    @app.get("/api/live", tags=["dashboard"], dependencies=[viewer])
    async def live(request: Request) -> StreamingResponse:
        """Server-sent events, one `tick` per second: live sessions (new power/energy points only), stations that
        changed (online, connector status), totals."""

        async def events() -> AsyncIterator[str]:
            sub = Subscriber()
            hub.subscribers += 1
            loop = asyncio.get_running_loop()
            ends = loop.time() + MAX_STREAM_S
            try:
                yield "retry: 2000\n\n"
                while loop.time() < ends and not closing.is_set() and not await request.is_disconnected():
                    yield f"event: tick\ndata: {json.dumps(hub.tick(sub), separators=(',', ':'))}\n\n"
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closing.wait(), interval)
            finally:
                hub.subscribers -= 1

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/dashboard/summary", tags=["dashboard"], dependencies=[viewer])
    def summary() -> dict[str, Any]:
        """Authorization and Plug & Charge outcomes since the CSMS started, sessions by ISO protocol, stations."""
        def rows(counter: Any) -> list[dict[str, Any]]:
            return [{**dict(zip(counter.label_names, k, strict=True)), "count": v}
                    for k, v in sorted(counter.values.items())]
        return {"authorizations": rows(metrics.authorizations), "plugAndCharge": rows(metrics.pnc),
                "sessionsByProtocol": rows(metrics.sessions), "callErrors": rows(metrics.call_errors),
                "stationsOnline": len(csms.server.connections)}
