"""The station-wide pace of renegotiations (docs/station.md, "When the station renegotiates").

A grid signal changes the profile of every car at once: each EV whose schedule no longer fits is asked to
renegotiate (-2: PowerDeliveryReq Renegotiate, ChargeParameterDiscovery with a new SAScheduleList, PowerDeliveryReq
Start; -20 scheduled: ScheduleExchange and PowerDelivery), and each renegotiation ends in a NotifyEVChargingSchedule
to the CSMS. Asked of every EV in the same charge loop, that work lands on the station at once, on top of every
session's charge loop; the station then answered charge loops late and EVs gave up after V2G_EVCC_Msg_Timeout
(0.25 s). The new limit itself needs no renegotiation: it reaches the car in the next charge loop as the EVSE's
maximum (EVSEMaximumPowerLimit, EVSEMaxCurrent, -20 EVSEMaximumChargePower), and OCPP's K16 (renegotiation
initiated by the CSMS) sets no time for the renegotiation. So the station spreads them:

- at most `at_once` sessions renegotiate at a time: from the charge loop that asks the EV to, until the EV has its
  new offer (ChargeParameterDiscoveryRes / ScheduleExchangeRes), its session ends, or `HOLD_S` passed (an EV that
  does not react does not block the others);
- the renegotiations start at least 1 / `per_second` s apart (0: no such pause);
- with `settle_s` (0 by default: off), a session renegotiates that long after the last profile change of its EVSE
  at the soonest: one re-plan of the CSMS reaches an EVSE as several changes within a second or so (a grid signal:
  the station-wide default for newcomers, then the car's own TxProfile, a raise only once every lowering was
  answered), and an EV asked after the first renegotiates again after the next. Off by default because it is in
  real seconds: a simulation at 60 x (the shipped rush-hour scenario) saw a -20 scheduled EV keep its old tuple for a
  simulated minute, and its own energy count left the meter's by 25 %.

An EV that must wait is asked in a later charge loop (it polls the station's notification every loop); meanwhile it
charges within the limit its charge loop carries, and a later change before its turn is in the offer it then gets
(one renegotiation instead of two).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

HOLD_S = 10.0
"""Seconds after which a renegotiation the EV has not carried out stops counting against `at_once`."""


@dataclass(frozen=True)
class RenegotiationPacing:
    """How fast a station asks its EVs to renegotiate (the station settings' iso15118.renegotiations_at_once,
    renegotiations_per_second and renegotiation_settle_s)."""

    at_once: int = 2  # sessions renegotiating at a time (>= 1)
    per_second: float = 4.0  # renegotiations started per second at most (0: no limit)
    settle_s: float = 0.0  # seconds from the EVSE's last profile change to its renegotiation at the soonest


class RenegotiationPacer:
    """One station's renegotiation turns, shared by its EVSEs' sessions (any hashable owner: a SessionPolicy)."""

    def __init__(self, pacing: RenegotiationPacing | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacing = pacing or RenegotiationPacing()
        self.clock = clock  # real seconds: the EVs' and the station's CPU run in real time, whatever the time scale
        self.holding: dict[object, float] = {}  # owner -> when its turn was granted
        self.last: float | None = None  # when the last turn was granted
        self.granted = 0  # turns granted so far (tests, diagnostics)
        self.refused = 0  # asks answered "not yet"

    def turn(self, owner: object, changed: float | None = None) -> bool:
        """Whether `owner` may renegotiate now: True for the turn it holds, or a new turn when one is free and its
        EVSE's last profile change (`changed`, on this pacer's clock) is `settle_s` old."""
        now = self.clock()
        if owner in self.holding:
            return True
        if changed is not None and now - changed < self.pacing.settle_s:
            self.refused += 1
            return False
        for other, since in list(self.holding.items()):
            if now - since >= HOLD_S:
                del self.holding[other]
        p = self.pacing
        if len(self.holding) >= max(1, p.at_once) or (
                p.per_second > 0 and self.last is not None and now - self.last < 1.0 / p.per_second):
            self.refused += 1
            return False
        self.holding[owner] = self.last = now
        self.granted += 1
        return True

    def done(self, owner: object) -> None:
        """`owner`'s renegotiation is over (the EV has its new offer, or its session ended): its turn is free."""
        self.holding.pop(owner, None)
