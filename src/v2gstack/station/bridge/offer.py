"""What a car was offered (its ISO 15118-2 SAScheduleTuple or -20 ScheduleTuple) and whether a new composite schedule
still fits it, so that a charging-profile change makes the station ask for a renegotiation only when the car must
know (docs/station.md, "When the station renegotiates").

The rule: over what is left of the offer, the new schedule is compared with the old one shifted by the time gone
by; the car renegotiates when the new one is lower at any point (charging, or with BPT discharging), or, for an offer
made under an OCPP 2.1 setpoint (the car follows the tuple's power, not a maximum), when it differs at all. A higher
or equal schedule keeps the session: the car's schedule still fits, and the charge loop's EVSE maximum (EVSEMaxCurrent,
EVSEMaximumPowerLimit, -20 EVSEMaximumChargePower) carries the limit in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...iso15118.model import PMaxEntry
from ...iso15118.model20 import PowerSchedule, ScheduleTuple

TOLERANCE_W = 1.0
"""A new schedule this close to the offered one is the same (limits are decimals with one digit)."""

Step = tuple[float, float, float]
"""(start s, end s, W) from the offer's start."""


@dataclass(frozen=True)
class Offer:
    """A schedule offered to the car at `at` (the station clock's simulated seconds)."""

    at: float
    charging: tuple[Step, ...]
    discharging: tuple[Step, ...] | None = None
    exact: bool = False  # offered under a setpoint: the car follows the powers, so any change counts

    @property
    def end(self) -> float:
        """When the offer ends (s from its start)."""
        return self.charging[-1][1] if self.charging else 0.0


def pmax_offer(at: float, entries: Sequence[PMaxEntry]) -> Offer:
    """The offer of an ISO 15118-2 PMaxSchedule (the last entry carries its duration)."""
    steps = []
    for i, e in enumerate(entries):
        end = entries[i + 1].start if i + 1 < len(entries) else e.start + (e.duration or 0)
        steps.append((float(e.start), float(end), float(e.pmax)))
    return Offer(at, tuple(steps))


def _steps(schedule: PowerSchedule) -> tuple[Step, ...]:
    out, t = [], 0.0
    for e in schedule.entries:
        out.append((t, t + e.duration, float(e.power)))
        t += e.duration
    return tuple(out)


def tuple_offer(at: float, offered: ScheduleTuple, exact: bool = False) -> Offer:
    """The offer of an ISO 15118-20 ScheduleTuple (charging and, BPT, discharging powers)."""
    discharging = _steps(offered.discharging) if offered.discharging is not None else None
    return Offer(at, _steps(offered.charging), discharging, exact)


def _power_at(steps: Sequence[Step], t: float) -> float | None:
    for start, end, watts in steps:
        if start <= t < end:
            return watts
    return None


def _compare(name: str, old: Sequence[Step], new: Sequence[Step], shift: float, until: float,
             exact: bool) -> str | None:
    points = sorted({0.0, *(s - shift for s, _, _ in old), *(s for s, _, _ in new)})
    for t in (p for p in points if 0.0 <= p < until):
        was, now = _power_at(old, t + shift), _power_at(new, t)
        if was is None or now is None:
            continue
        if now < was - TOLERANCE_W or (exact and abs(now - was) > TOLERANCE_W):
            return f"{name} {now:.0f} W instead of {was:.0f} W offered, {t:.0f} s from now"
    return None


def outdated(old: Offer, new: Offer) -> str | None:
    """Why the car must renegotiate from `old` to `new` (both from their `at`), None when its schedule still fits."""
    shift = max(0.0, new.at - old.at)
    until = old.end - shift
    if until <= 0:
        return None
    exact = old.exact or new.exact
    why = _compare("charging", old.charging, new.charging, shift, until, exact)
    if why is None and old.discharging is not None and new.discharging is not None:
        why = _compare("discharging", old.discharging, new.discharging, shift, until, exact)
    return why
