"""The OpenADR 2.0b mapping: an event as openleadr's VEN hands it over -> the internal grid signal (documented in
docs/grid.md). Pure functions and the VEN's configuration, without openleadr (an optional dependency)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .model import (
    MAX_INTERVAL,
    GridSignal,
    Opt,
    SignalError,
    Target,
    TargetKind,
    check_intervals,
    parse_interval,
)

SCALES = {"none": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
"""OpenADR SI scale codes of an itemBase (powerReal) -> factor to W."""
SIMPLE_FRACTIONS = (None, 0.66, 0.33, 0.0)
"""SIMPLE levels 0-3 -> the site's import limit as a fraction of its capacity (level 0: no limit)."""


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
