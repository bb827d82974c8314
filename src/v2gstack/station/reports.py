"""The device model as the CSMS sees it: GetVariables, SetVariables and GetBaseReport with its NotifyReport parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import StationContext
from .device_model import chunks
from .link import Link

Payload = dict[str, Any]


class Reports:
    """Reading, writing and reporting the device model for the CSMS."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link

    async def send_report(self, request_id: int, base: str) -> None:
        """NotifyReport parts for GetBaseReport (stops at the first part the CSMS does not take)."""
        model = self.ctx.model
        size = model.int("DeviceDataCtrlr", "ReportItemsPerMessage")
        parts = chunks(model.report(base), size)
        for i, part in enumerate(parts):
            payload: Payload = {"requestId": request_id, "generatedAt": self.ctx.clock.timestamp(),
                                "tbc": i < len(parts) - 1, "seqNo": i}
            if part:
                payload["reportData"] = part
            if await self.link.try_call("NotifyReport", payload) is None:
                return

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """GetVariables, SetVariables, GetBaseReport."""
        model = self.ctx.model
        return {
            "GetVariables": lambda p: {"getVariableResult": [model.get_variable(d) for d in p["getVariableData"]]},
            "SetVariables": lambda p: {"setVariableResult": [model.set_variable(d) for d in p["setVariableData"]]},
            "GetBaseReport": self._base_report,
        }

    def _base_report(self, p: Payload) -> Payload:
        """GetBaseReport: NotifyReport parts follow the answer."""
        self.ctx.spawn(self.send_report(p["requestId"], p["reportBase"]), "report")
        return {"status": "Accepted"}
