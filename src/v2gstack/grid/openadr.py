"""The OpenADR 2.0b VEN (openleadr's client): events become grid signals (the mapping is `event_signal`, documented
in docs/grid.md), answered optIn when the site took them and optOut when it could not; the site's import and export
power go to the VTN as TELEMETRY_USAGE reports.

The VEN knows nothing of the CSMS: it is given a sink (apply a signal, cancel one; a SignalError refuses it) and a
telemetry source (import W, export W). Event updates (a new modification number) replace the signal; a cancelled
event cancels it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

# openleadr is an optional dependency (the `grid` extra): imported here only, and this module only when a VEN runs
from openleadr import OpenADRClient

from .model import (
    MAX_INTERVAL,
    GridSignal,
    Opt,
    SignalError,
    Target,
    TargetKind,
    UnknownSignal,
    check_intervals,
    parse_interval,
)

log = logging.getLogger(__name__)

SCALES = {"none": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
"""OpenADR SI scale codes of an itemBase (powerReal) -> factor to W."""
SIMPLE_FRACTIONS = (None, 0.66, 0.33, 0.0)
"""SIMPLE levels 0-3 -> the site's import limit as a fraction of its capacity (level 0: no limit)."""


class SignalSink(Protocol):
    """Where the VEN's signals go (the CSMS's grid control)."""

    def apply_signals(self, signals: list[GridSignal]) -> Any:
        """Apply signals as one batch (SignalError: refused, nothing applied)."""

    def cancel(self, signal_id: str) -> Any:
        """Remove a signal (UnknownSignal when there is none)."""


@dataclass(frozen=True, slots=True)
class VenConfig:
    """How the VEN reaches its VTN and maps its events."""

    vtn_url: str
    ven_name: str = "v2gstack-csms"
    site_id: str = "site"
    site_import_w: float | None = None  # the site's import capacity (SIMPLE levels scale it); None: SIMPLE unused
    telemetry_s: float = 10.0  # sampling rate offered for TELEMETRY_USAGE


def signal_id(event_id: str) -> str:
    """The internal id of an OpenADR event's signal."""
    return f"oadr:{event_id}"


def _factor(sig: dict[str, Any], default: float) -> float:
    """W per payload unit of a power signal: its itemBase scale when it names one, else `default`."""
    measurement = sig.get("measurement") or {}
    scale = measurement.get("scale") if isinstance(measurement, dict) else None
    return SCALES.get(scale, default) if scale else default


def event_signal(event: dict[str, Any], cfg: VenConfig) -> GridSignal | None:
    """The internal signal of an OpenADR event (None: it asks nothing; SignalError when it cannot be mapped):

    - LOAD_DISPATCH / setpoint: setpointW = payload x scale (kW when the signal names no itemBase scale);
    - ELECTRICITY_PRICE or ENERGY_PRICE / price: price per kWh = payload;
    - SIMPLE / level 0-3: importLimitW = site capacity x SIMPLE_FRACTIONS[level] (level 0: none);
    - any other name or type: refused (the VEN opts out).
    Intervals of the event's signals with the same start and length are merged; the target is a station when the
    event names it as resource_id, a group when it names it as group_id, else the site."""
    descriptor = event["event_descriptor"]
    merged: dict[tuple[datetime, timedelta], dict[str, float]] = {}
    for n, sig in enumerate(event.get("event_signals") or []):
        name, kind = sig.get("signal_name"), sig.get("signal_type")
        path = f"event_signals[{n}]"
        for m, iv in enumerate(sig.get("intervals") or []):
            start, duration, payload = iv["dtstart"], iv["duration"], iv["signal_payload"]
            if not isinstance(duration, timedelta) or duration <= timedelta(0) or duration > MAX_INTERVAL:
                raise SignalError("inverted-interval", f"duration {duration!r} is not positive or too long",
                                  f"{path}.intervals[{m}]")
            values = merged.setdefault((start, duration), {})
            if name == "LOAD_DISPATCH" and kind == "setpoint":
                values["setpointW"] = float(payload) * _factor(sig, 1e3)
            elif name in ("ELECTRICITY_PRICE", "ENERGY_PRICE") and kind == "price":
                values["price"] = float(payload)
            elif name in ("SIMPLE", "simple") and kind == "level":
                level = int(payload)
                if not 0 <= level <= 3 or level != payload:
                    raise SignalError("out-of-range", f"SIMPLE level {payload!r} is not 0-3", f"{path}.intervals[{m}]")
                if cfg.site_import_w is None:
                    raise SignalError("unsupported", "SIMPLE levels need the site's import capacity", path)
                fraction = SIMPLE_FRACTIONS[level]
                if fraction is not None:
                    values["importLimitW"] = cfg.site_import_w * fraction
            else:
                raise SignalError("unsupported", f"signal {name}/{kind} is not mapped", path)
    intervals = [parse_interval({"start": start, "end": start + duration, **values}, f"intervals[{n}]")
                 for n, ((start, duration), values) in enumerate(sorted(merged.items(), key=lambda kv: kv[0][0]))
                 if values]  # a SIMPLE level 0 interval asks nothing
    if not intervals:
        return None
    targets = event.get("targets_by_type") or {}
    if targets.get("resource_id"):
        target = Target(TargetKind.STATION, str(targets["resource_id"][0]))
    elif targets.get("group_id"):
        target = Target(TargetKind.GROUP, str(targets["group_id"][0]))
    else:
        target = Target(TargetKind.SITE, cfg.site_id)
    priority = int(descriptor.get("priority") or 0)  # OpenADR: 1 is the highest, 0 none
    return GridSignal(signal_id(descriptor["event_id"]), "openadr", target, check_intervals(intervals), Opt.IN,
                      0 if priority == 0 else max(0, 1000 - priority), int(descriptor.get("modification_number") or 0))


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
        rate = timedelta(seconds=cfg.telemetry_s)
        for resource, pick in (("site-import", 0), ("site-export", 1)):
            self.client.add_report(callback=self._reader(pick), resource_id=resource, measurement="power_real",
                                   report_specifier_id="v2gstack-site-power", sampling_rate=rate, unit="W",
                                   report_name="TELEMETRY_USAGE", data_collection_mode="incremental")

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
