"""`GET /metrics`: the CSMS's Prometheus metrics (csms/metrics.py) for a viewer, or for the scrape token.

A scraper authenticates like any API client (`Authorization: Bearer` with a viewer token, or a viewer's session), or
with the separate `api.metrics_token` setting, a secret that opens /metrics and nothing else (compared in constant
time), so Prometheus needs no API token that also reads stations and transactions.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from .auth import ApiAuth, Bearer, Role, forbid_unless
from .exposition import CONTENT_TYPE
from .metrics import metrics_of
from .service import Csms


def add_metrics_route(app: FastAPI, csms: Csms, auth: ApiAuth, metrics_token: str | None = None) -> None:
    """Mount GET /metrics (counting starts now, if it had not)."""
    metrics = metrics_of(csms)

    async def scraper(request: Request, credentials: Bearer) -> None:
        if metrics_token and credentials is not None and hmac.compare_digest(
                credentials.credentials.encode(), metrics_token.encode()):
            return
        principal = await auth.authenticated(request, credentials)
        forbid_unless(principal, Role.VIEWER, "GET /metrics")

    @app.get("/metrics", tags=["metrics"], response_class=PlainTextResponse,
             dependencies=[Depends(scraper)])
    def prometheus() -> PlainTextResponse:
        """Prometheus text format: stations connected per OCPP version, messages per action and direction, handling
        latency, CALLERRORs by code, sessions by ISO 15118 protocol, authorization and Plug & Charge outcomes,
        database commit latency, queue depths (docs/operations.md)."""
        try:
            text = metrics.render()
        except RuntimeError as e:  # a table changed size while a station's frame was counted: try once more
            raise HTTPException(503, f"metrics busy: {e}") from None
        return PlainTextResponse(text, media_type=CONTENT_TYPE)
