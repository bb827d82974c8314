"""The OpenADR 2.0b VEN (openleadr's client): events become grid signals (the mapping is
openadr_map.event_signal, documented in docs/grid.md), answered optIn when the site took them and optOut when it
could not; the site's import and export power go to the VTN as TELEMETRY_USAGE reports.

The VEN knows nothing of the CSMS: it is given a sink (apply a signal, cancel one; a SignalError refuses it) and a
telemetry source (import W, export W). Event updates (a new modification number) replace the signal; a cancelled
event cancels it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

# openleadr is an optional dependency (the `grid` extra): imported here only, and this module only when a VEN runs
from openleadr import OpenADRClient
from openleadr.objects import SamplingRate

from .model import GridSignal, Opt, SignalError, UnknownSignal
from .openadr_map import VenConfig, event_signal, signal_id

log = logging.getLogger(__name__)


class SignalSink(Protocol):
    """Where the VEN's signals go (the CSMS's grid control)."""

    def apply_signals(self, signals: list[GridSignal]) -> Any:
        """Apply signals as one batch (SignalError: refused, nothing applied)."""

    def cancel(self, signal_id: str) -> Any:
        """Remove a signal (UnknownSignal when there is none)."""


class GridVen:
    """The VEN: registration, TELEMETRY_USAGE reports and events, through openleadr's client."""

    def __init__(self, cfg: VenConfig, sink: SignalSink, telemetry: Callable[[], tuple[float, float]]) -> None:
        self.cfg = cfg
        self.sink = sink
        self.telemetry = telemetry
        self.answers: dict[str, str] = {}  # event id -> the last optIn/optOut
        self.errors: dict[str, str] = {}  # event id -> why it was refused
        self.client = OpenADRClient(ven_name=cfg.ven_name, vtn_url=cfg.vtn_url)
        self.client.add_handler("on_event", self.on_event)
        self.client.add_handler("on_update_event", self.on_event)
        # offered: from telemetry_s up to an hour; the VTN picks the granularity within
        rate = SamplingRate(min_period=timedelta(seconds=cfg.telemetry_s), max_period=max(
            timedelta(hours=1), timedelta(seconds=cfg.telemetry_s)), on_change=False)
        for resource, pick in (("site-import", 0), ("site-export", 1)):
            self.client.add_report(callback=self._reader(pick), resource_id=resource, measurement="power_real",
                                   report_specifier_id="v2gstack-site-power", sampling_rate=rate, unit="W",
                                   report_name="TELEMETRY_USAGE", data_collection_mode="incremental",
                                   report_duration=timedelta(hours=1))

    def _reader(self, pick: int) -> Callable[[], float]:
        def read() -> float:
            return float(self.telemetry()[pick])

        return read

    async def start(self) -> None:
        """Register with the VTN, register the reports, start polling."""
        await self.client.run()

    async def stop(self) -> None:
        """Stop polling."""
        await self.client.stop()

    @property
    def ven_id(self) -> str | None:
        """The id the VTN gave this VEN at registration."""
        return self.client.ven_id

    async def on_event(self, event: dict[str, Any]) -> str:
        """A new or changed event: optIn when its signal was applied (or its cancellation done), else optOut."""
        descriptor = event["event_descriptor"]
        event_id = descriptor["event_id"]
        status = descriptor.get("event_status")
        try:
            if status == "cancelled":
                with contextlib.suppress(UnknownSignal):  # a refused event was never applied
                    self.sink.cancel(signal_id(event_id))
                answer = "optIn"
            else:
                signal = event_signal(event, self.cfg)
                if signal is not None:
                    self.sink.apply_signals([signal])
                else:  # nothing asked (SIMPLE level 0): what an earlier modification asked ends
                    with contextlib.suppress(UnknownSignal):
                        self.sink.cancel(signal_id(event_id))
                answer = "optIn"
        except SignalError as e:
            log.warning("OpenADR event %s refused (optOut): %s", event_id, e)
            self.errors[event_id] = str(e)
            answer = "optOut"
        self.answers[event_id] = answer
        log.info("OpenADR event %s (%s, modification %s): %s", event_id, status,
                 descriptor.get("modification_number"), answer)
        return answer

    async def opt(self, event_id: str, opt: Opt) -> bool:
        """Tell the VTN the site opts in or out of an event (EiOpt); whether the VTN acknowledged it (openleadr's
        own VTN mounts no EiOpt service: False there)."""
        targets = [{"ven_id": self.client.ven_id}]
        try:
            result = await self.client.create_opt("optIn" if opt is Opt.IN else "optOut", "participating"
                                                  if opt is Opt.IN else "notParticipating", targets,
                                                  event_id=event_id, modification_number=0)
        except Exception as e:  # the VTN's answer is not an opt response
            log.warning("EiOpt for event %s not acknowledged: %s", event_id, e)
            return False
        return bool(result)
