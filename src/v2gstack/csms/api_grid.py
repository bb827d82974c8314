"""The CSMS REST API's grid routes: operator signals in (one signal or a batch, all or nothing), cancellation and
opt-in/out, and what the grid control reports back (the signals in force, the plan, who falls short, the site's
power, the last dispatch).

Signals and their changes need an operator token and are audited; a refused signal is answered 422 with the rule
(`code`), the field (`path`) and why; nothing of a refused batch is applied. 409: no grid control on this CSMS.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..grid.model import Opt, SignalError, UnknownSignal
from .audit import note
from .auth import ApiAuth, Role
from .service import Csms
from .singletons import GRID


class OptIn(BaseModel):
    """Take part in a signal (optIn) or not (optOut)."""

    opt: Opt


def add_grid_routes(app: FastAPI, csms: Csms, auth: ApiAuth) -> None:
    """Register the grid routes."""
    viewer, operator = Depends(auth.require(Role.VIEWER)), Depends(auth.require(Role.OPERATOR))

    def grid() -> Any:
        if csms.grid is None:
            if csms.singletons is not None and GRID in csms.singletons.jobs:  # a cluster: on the elected node only
                raise HTTPException(409, "the grid control runs on the elected node of the cluster, not on this one "
                                         "(GET /api/cluster names it)")
            raise HTTPException(409, "this CSMS runs no grid control")
        return csms.grid

    async def planned(g: Any) -> dict[str, Any]:
        """The report once a plan made after this request is in force (or after the budget and 10 s)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(g.wait_covered(g.requests), g.config.time_budget_s + 10.0)
        return g.report()

    @app.post("/api/grid/signals", status_code=201, tags=["grid"], dependencies=[operator])
    async def post_signals(request: Request, body: Any = Body(...)) -> Any:  # noqa: B008 (FastAPI's idiom)
        """One signal, or `{"signals": [...]}`: checked whole (intervals, values, targets), applied at once, then
        planned; the answer is the report after the new plan."""
        note(request, action="GridSignal")
        g = grid()
        raws = body["signals"] if isinstance(body, dict) and set(body) == {"signals"} else [body]
        if not isinstance(raws, list) or not raws:
            return JSONResponse({"code": "bad-signal", "path": "signals", "detail": "a non-empty list of signals"},
                                status_code=422)
        try:
            applied = g.apply(raws, source="operator")
        except SignalError as e:
            return JSONResponse(e.to_dict(), status_code=422)
        return {"applied": [s.id for s in applied], **await planned(g)}

    @app.get("/api/grid/signals", tags=["grid"], dependencies=[viewer])
    def get_signals() -> Any:
        """The signals in force, the last plan and dispatch (the grid control's report)."""
        return grid().report()

    @app.delete("/api/grid/signals/{signal_id}", tags=["grid"], dependencies=[operator])
    async def cancel_signal(signal_id: str, request: Request) -> Any:
        """Cancel a signal: it is dropped and the site re-planned without it."""
        note(request, action="GridSignalCancel")
        g = grid()
        try:
            g.cancel(signal_id)
        except UnknownSignal as e:
            return JSONResponse(e.to_dict(), status_code=404)
        return {"cancelled": signal_id, **await planned(g)}

    @app.post("/api/grid/signals/{signal_id}/opt", tags=["grid"], dependencies=[operator])
    async def opt_signal(signal_id: str, body: OptIn, request: Request) -> Any:
        """Opt in or out of a signal (an opted-out signal is kept and reported, not planned for)."""
        note(request, action="GridSignalOpt")
        g = grid()
        try:
            s = g.set_opt(signal_id, body.opt)
        except UnknownSignal as e:
            return JSONResponse(e.to_dict(), status_code=404)
        out = await planned(g)
        if s.source == "openadr" and g.ven is not None:  # tell the VTN (EiOpt); whether it acknowledged
            out["vtnAcknowledged"] = await g.ven.opt(signal_id.removeprefix("oadr:"), body.opt)
        return out
