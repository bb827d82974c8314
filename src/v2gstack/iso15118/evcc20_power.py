"""The EV's side of the ISO 15118-20 charge loops (a mixin of Evcc20): what power it takes or feeds back, the loop
requests in the four control modes, the energy it counts both ways, and what it does on the SECC's notifications.

Scheduled mode: the EV follows the chosen ScheduleTuple from the moment it received it: where the charging schedule
allows power it charges (up to its target SoC), where the charging schedule allows none and the discharging schedule
does it feeds back (down to its minimum SoC). Dynamic mode: it follows the SECC's target of each answer within its
limits (AC: EVSETargetActivePower; DC: the SECC sets the current, the limits say which way). ServiceRenegotiation
stops the transfer and selects a service again (evcc20). Energy: each answer's
power holds until the next one, as the EVSE's meter counts it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec, ed448

from . import pnc20
from .messages import iso20
from .messages.iso20_ac import ac_loop_req, read_ac_loop_res
from .messages.iso20_dc import dc_loop_req, read_dc_loop_res
from .messages.iso20_types import Body
from .model20 import (
    ACLimits20,
    ControlMode,
    DCLimits20,
    EnergyRequest,
    LoopRequest,
    LoopStatus,
    MeterReading20,
    Notification,
    ScheduleTuple,
)
from .v2gtp import PayloadType

if TYPE_CHECKING:  # the mixin's host and what it holds; imported for the types only
    from .ev import EVModel
    from .evcc import EvccConfig, EvccSession, Send, SessionResult
    from .evcc20 import Contract20

METER_ID_REF = "id1"  # the Id of the SignedMeteringData the EV confirms


class EvPower20:
    """Charge-loop requests, power decisions and energy counting; the host (Evcc20) provides the state below."""

    s: EvccSession
    config: EvccConfig
    ev: EVModel
    mode: ControlMode
    tuple: ScheduleTuple | None
    pausing: bool
    metering_confirmations: int
    auth: str
    contract: Contract20 | None

    def __init__(self) -> None:
        self.evse_ac: ACLimits20 | None = None
        self.evse_dc: DCLimits20 | None = None
        self.schedule_start = 0.0
        self._power = 0.0  # W: the power the last answer set (negative: discharging)
        self._last_tick: float | None = None
        self._planned = 0.0  # the power this loop's request announced (scheduled)

    # host methods (Evcc20)
    @property
    def bpt(self) -> bool:  # pragma: no cover - provided by Evcc20
        """BPT service."""
        raise NotImplementedError

    @property
    def dc(self) -> bool:  # pragma: no cover - provided by Evcc20
        """DC service."""
        raise NotImplementedError

    def send(self, now: float, name: str, body: Body, delay: float = 0.0, signature: Body | None = None,
             payload_type: int | None = None) -> Send | SessionResult:  # pragma: no cover - provided by Evcc20
        """Send a request."""
        raise NotImplementedError

    def power_delivery(self, now: float, progress: str) -> Send | SessionResult:  # pragma: no cover - Evcc20
        """PowerDeliveryReq."""
        raise NotImplementedError

    def service_renegotiation(self, now: float) -> Send | SessionResult:  # pragma: no cover - Evcc20
        """Stop the energy transfer and select a service again."""
        raise NotImplementedError

    # ----- energy -----

    def _tick(self, now: float) -> float:
        """Seconds since the previous answer."""
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        return dt

    def take(self, now: float, power_w: float) -> None:
        """Energy since the previous answer at the power that answer set, then the new power from now on."""
        self.ev.transfer(self._power, self._tick(now))
        self._power = power_w

    # ----- power decisions -----

    def max_charge_power(self) -> float:
        """What the EV may take now (0 at its maximum SoC)."""
        if self.ev.soc >= self.ev.max_soc:
            return 0.0
        ev = self.ev.dc_max_power if self.dc else self.ev.ac_max_power
        evse = self.evse_dc.max_charge_power if self.dc and self.evse_dc else \
            self.evse_ac.max_charge_power if self.evse_ac else ev
        return min(ev, evse)

    def max_discharge_power(self) -> float:
        """What the EV may feed back now (0 without BPT or at its minimum SoC)."""
        if not self.bpt or not self.ev.can_discharge:
            return 0.0
        ev = self.ev.dc_max_discharge_power if self.dc else self.ev.ac_max_discharge_power
        evse = (self.evse_dc.max_discharge_power if self.dc and self.evse_dc else
                self.evse_ac.max_discharge_power if self.evse_ac else None)
        return min(ev, evse if evse is not None else ev)

    def scheduled_power(self, offset: float, plan: bool = False) -> float:
        """The chosen tuple's power for the EV `offset` s into the schedule: charge where the charging schedule
        allows (until the target SoC), feed back where only the discharging schedule does. With `plan` the SoC is
        ignored (the profile announced at PowerDelivery)."""
        assert self.tuple is not None
        up = self.tuple.charging.power_at(offset)
        down = self.tuple.discharging.power_at(offset) if self.tuple.discharging is not None and self.bpt else 0.0
        if up > 0:
            if plan:
                return min(up, self._ev_max_charge())
            return 0.0 if self.ev.full else min(up, self.max_charge_power())
        if up < 0:
            down = max(down, -up)
        if down > 0 and self.bpt and (plan or self.ev.can_discharge):
            return -min(down, self.max_discharge_power() if not plan else self._ev_max_discharge())
        return 0.0

    def _ev_max_charge(self) -> float:
        """The EV's and EVSE's charge limit regardless of the SoC."""
        ev = self.ev.dc_max_power if self.dc else self.ev.ac_max_power
        evse = self.evse_dc.max_charge_power if self.dc and self.evse_dc else \
            self.evse_ac.max_charge_power if self.evse_ac else ev
        return min(ev, evse)

    def _ev_max_discharge(self) -> float:
        """The EV's and EVSE's discharge limit regardless of the SoC."""
        ev = self.ev.dc_max_discharge_power if self.dc else self.ev.ac_max_discharge_power
        evse = (self.evse_dc.max_discharge_power if self.dc and self.evse_dc else
                self.evse_ac.max_discharge_power if self.evse_ac else None)
        return min(ev, evse if evse is not None else ev)

    def _ev_charge_limit(self) -> float:
        """EVMaximumChargePower: the EV's own limit now (0 at its maximum SoC), not the EVSE's, which a dynamic
        EVSE lowers loop by loop (echoing that back would ratchet the power down for good)."""
        if self.ev.soc >= self.ev.max_soc:
            return 0.0
        return self.ev.dc_max_power if self.dc else self.ev.ac_max_power

    def _ev_discharge_limit(self) -> float:
        """EVMaximumDischargePower: the EV's own limit now (0 at its minimum SoC)."""
        if not self.bpt or not self.ev.can_discharge:
            return 0.0
        return self.ev.dc_max_discharge_power if self.dc else self.ev.ac_max_discharge_power

    def _follow(self, target: float) -> float:
        """A dynamic target within the EV's limits and SoC window."""
        return max(-self.max_discharge_power(), min(self.max_charge_power(), target))

    # ----- the loop -----

    def _energy_request(self) -> EnergyRequest | None:
        """Dynamic mode: the energy requests repeated in each loop request."""
        if self.mode is not ControlMode.DYNAMIC:
            return None
        ev = self.ev
        v2x = (ev.energy_to(ev.max_soc), ev.energy_to(ev.min_soc)) if self.bpt else (None, None)
        return EnergyRequest(ev.energy_to(ev.target_soc), ev.energy_to(ev.max_soc),
                             max(0.0, ev.energy_to(ev.min_soc)), v2x[0], v2x[1], ev.departure_time)

    def charge_loop(self, now: float, delay: float) -> Send | SessionResult:
        """The next AC_ChargeLoopReq / DC_ChargeLoopReq."""
        ev = self.ev
        planned = self.scheduled_power(now + delay - self.schedule_start) if self.mode is ControlMode.SCHEDULED \
            else self._power
        self._planned = planned
        bpt = self.bpt
        common = dict(control_mode=self.mode, bpt=bpt, soc=int(ev.soc), charging_complete=ev.full,
                      meter_requested=self.config.meter_info_requested, energy=self._energy_request(),
                      max_charge_power=self._ev_charge_limit(), min_charge_power=0.0,
                      max_discharge_power=self._ev_discharge_limit() if bpt else None,
                      min_discharge_power=0.0 if bpt else None)
        if not self.dc:
            req = LoopRequest(dc=False, present_power=planned, **common)  # type: ignore[arg-type]
            return self.send(now, "AC_ChargeLoopReq", ac_loop_req(req), delay)
        voltage = round(ev.pack_voltage, 1)
        current = planned / voltage if voltage > 0 else 0.0
        target_voltage = min(ev.dc_max_voltage, voltage + 10.0) if planned > 0 else voltage
        req = LoopRequest(dc=True, present_voltage=voltage, target_current=round(current, 1),
                          target_voltage=target_voltage, max_charge_current=ev.dc_max_current,
                          max_voltage=ev.dc_max_voltage, min_voltage=ev.dc_min_voltage,
                          max_discharge_current=ev.dc_max_discharge_current if bpt else None,
                          **common)  # type: ignore[arg-type]
        return self.send(now, "DC_ChargeLoopReq", dc_loop_req(req), delay)

    def _ac_loop_res(self, body: Body, now: float) -> Send | SessionResult:
        """AC_ChargeLoopRes: dynamic -> follow the target; scheduled -> the planned power (within a target the
        SECC may give)."""
        answer, status = read_ac_loop_res(body)
        if self.mode is ControlMode.DYNAMIC:
            power = self._follow(answer.target_power or 0.0)
        else:
            power = self._planned
            if answer.target_power is not None and answer.target_power >= 0:
                power = min(power, answer.target_power)
        self.take(now, power)
        self.s.charge_loops += 1
        return self.after_loop(now, status)

    def _dc_loop_res(self, body: Body, now: float) -> Send | SessionResult:
        """DC_ChargeLoopRes: the EVSE's output (signed current) is what flows; its limits are kept."""
        voltage, current, limits, _flags, status = read_dc_loop_res(body)
        evse = self.evse_dc
        if evse is not None and any(getattr(evse, k) != v for k, v in limits.items()):  # a new record if changed
            self.evse_dc = replace(evse, **limits)  # type: ignore[arg-type]
        self.take(now, voltage * current)
        self.s.charge_loops += 1
        return self.after_loop(now, status)

    def after_loop(self, now: float, status: LoopStatus) -> Send | SessionResult:
        """Confirm the meter, stop, pause, renegotiate or go on, as the SECC and the EV want."""
        note = status.notification
        if note is Notification.METERING_CONFIRMATION and status.meter is not None:
            return self.metering_confirmation(now, status.meter)
        if note is Notification.TERMINATE:
            return self.power_delivery(now, "Stop")
        if note is Notification.PAUSE:
            self.pausing = True
            return self.power_delivery(now, "Stop")
        loops = self.config.loops
        if (loops and self.s.charge_loops >= loops) or (self.ev.full and self._power >= 0):
            return self.power_delivery(now, "Stop")
        if note is Notification.SCHEDULE_RENEGOTIATION:
            return self.power_delivery(now, "ScheduleRenegotiation")
        if note is Notification.SERVICE_RENEGOTIATION:
            return self.service_renegotiation(now)
        return self.charge_loop(now, self.config.loop_interval)

    def metering_confirmation(self, now: float, meter: MeterReading20) -> Send | SessionResult:
        """MeteringConfirmationReq on its side stream: the reading the SECC asked the EV to confirm."""
        self.metering_confirmations += 1
        tuple_id = self.tuple.tuple_id if self.mode is ControlMode.SCHEDULED and self.tuple else None
        data = iso20.signed_metering_data(METER_ID_REF, self.s.session_id, meter, tuple_id)
        contract = self.contract if self.auth == "PnC" else None
        signature = None
        if contract is not None:
            key = contract.key
            if self.config.pnc_fault == "bad-metering-signature":
                key = ec.generate_private_key(ec.SECP521R1()) if isinstance(key, ec.EllipticCurvePrivateKey) else \
                    ed448.Ed448PrivateKey.generate()
            signature = pnc20.sign_metering(data, key)
        return self.send(now, "MeteringConfirmationReq", iso20.metering_confirmation_req(data), signature=signature,
                         payload_type=PayloadType.ISO20_METERING_CONFIRMATION)

    def _metering_confirmation_res(self, body: Body, now: float) -> Send | SessionResult:
        """MeteringConfirmationRes -> on with the loop."""
        return self.after_loop(now, LoopStatus())
