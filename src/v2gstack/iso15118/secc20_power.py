"""The AC and DC requests of the ISO 15118-20 SECC (a mixin of Secc20): charge parameters, cable check, precharge,
the charge loops in their four control modes, welding detection.

In every charge-loop response the controller sets the power: dynamic mode carries its target (AC: the signed
EVSETargetActivePower; DC: the limits), scheduled mode its limits while the EV follows its schedule. Without BPT no
discharge is ever asked for (a negative target becomes 0). The response also carries the notification of the
controller (Terminate, Pause, ScheduleRenegotiation, MeteringConfirmation) and the meter reading when the EV asked
for it or has to confirm it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..trace.error_map import FailureKind
from .messages.iso20_ac import ac_cpd_res, ac_loop_res, read_ac_cpd_req, read_ac_loop_req
from .messages.iso20_dc import (
    cable_check_res,
    dc_cpd_res,
    dc_loop_res,
    read_dc_cpd_req,
    read_dc_loop_req,
    read_precharge_req,
    voltage_res,
)
from .messages.iso20_types import Body
from .model20 import ACLoopAnswer, ControlMode, DCLoopAnswer, LoopRequest, LoopStatus, MeterReading20, Notification

if TYPE_CHECKING:  # the mixin's host; imported for the types only
    from .evse import EVSEController, SessionInfo
    from .model20 import DynamicSchedule
    from .secc import SeccSession

PRECHARGE_CURRENT = 2.0  # A: the current limit while the EVSE matches the EV's voltage


class RequestRefused(Exception):
    """A request that does not fit the session: answered with `code`, ending as `kind`."""

    def __init__(self, code: str, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.code, self.kind = code, kind


def _wrong(reason: str) -> RequestRefused:
    """FAILED_WrongChargeParameter for parameters that do not fit the selected service."""
    return RequestRefused("FAILED_WrongChargeParameter", FailureKind.WRONG_CHARGE_PARAMETER, reason)


class Power20:
    """AC and DC request handlers; the host (Secc20) provides the state below."""

    session: SeccSession
    controller: EVSEController
    expected: frozenset[str]
    mode: ControlMode
    bpt: bool
    dc: bool
    standby: bool
    plan: DynamicSchedule | None
    last_meter: MeterReading20 | None

    @property
    def info(self) -> SessionInfo:  # pragma: no cover - provided by Secc20
        """The session's SessionInfo."""
        raise NotImplementedError

    def notification(self) -> tuple[Notification, int]:  # pragma: no cover - provided by Secc20
        """The controller's notification."""
        raise NotImplementedError

    def _loop_names(self) -> frozenset[str]:  # pragma: no cover - provided by Secc20
        raise NotImplementedError

    def _stoppable(self, names: set[str]) -> frozenset[str]:  # pragma: no cover - provided by Secc20
        raise NotImplementedError

    # ----- charge parameters -----

    def _ac_cpd(self, body: Body) -> Body:
        """AC_ChargeParameterDiscoveryReq: the EV's limits against the selected service; the EVSE's limits."""
        ev, bpt = read_ac_cpd_req(body)
        if self.dc or bpt != self.bpt:
            raise _wrong(f"{'BPT' if bpt else 'plain'} AC charge parameters for service {self.info.service!r}")
        if ev.min_charge_power > ev.max_charge_power:
            raise _wrong("EVMinimumChargePower above EVMaximumChargePower")
        self.info.ev_limits = ev
        limits = self.controller.ac_limits20(self.info, ev, bpt)
        self.expected = self._stoppable({"ScheduleExchangeReq"})
        return ac_cpd_res("OK", limits, bpt)

    def _dc_cpd(self, body: Body) -> Body:
        """DC_ChargeParameterDiscoveryReq: the EV's limits against the selected service and the EVSE's voltage."""
        ev, bpt = read_dc_cpd_req(body)
        if not self.dc or bpt != self.bpt:
            raise _wrong(f"{'BPT' if bpt else 'plain'} DC charge parameters for service {self.info.service!r}")
        if ev.min_voltage > ev.max_voltage or ev.min_charge_current > ev.max_charge_current or \
                ev.min_charge_power > ev.max_charge_power:
            raise _wrong("an EV minimum above its maximum")
        limits = self.controller.dc_limits20(self.info, ev, bpt)
        if ev.max_voltage < limits.min_voltage or ev.min_voltage > limits.max_voltage:
            raise _wrong(f"the EV's voltage range {ev.min_voltage:g}-{ev.max_voltage:g} V misses the EVSE's "
                         f"{limits.min_voltage:g}-{limits.max_voltage:g} V")
        self.info.ev_limits = ev
        self.expected = self._stoppable({"ScheduleExchangeReq"})
        return dc_cpd_res("OK", limits, bpt)

    # ----- DC preparation and end -----

    def _cable_check(self, body: Body) -> Body:
        """DC_CableCheckReq: Ongoing while the isolation test runs; FAILED for an isolation fault."""
        result = self.controller.cable_check()
        if not result.done:
            self.expected = self._stoppable({"DC_CableCheckReq"})
            return cable_check_res("OK", "Ongoing")
        if result.isolation in ("Invalid", "Fault"):
            return cable_check_res("FAILED", "Finished")
        self.expected = self._stoppable({"DC_PreChargeReq"})
        return cable_check_res("OK", "Finished")

    def _precharge(self, body: Body) -> Body:
        """DC_PreChargeReq: drive the output toward the EV's target voltage with a small current."""
        _processing, _present, target = read_precharge_req(body)
        voltage = self.controller.precharge(target, PRECHARGE_CURRENT)
        self.expected = self._stoppable({"DC_PreChargeReq", "PowerDeliveryReq"})
        return voltage_res("OK", voltage)

    def _welding_detection(self, body: Body) -> Body:
        """DC_WeldingDetectionReq: the output voltage after the contactors opened."""
        voltage = self.controller.welding_detection()
        self.expected = frozenset({"DC_WeldingDetectionReq", "SessionStopReq"})
        return voltage_res("OK", voltage)

    # ----- charge loops -----

    def _check_loop(self, req: LoopRequest) -> None:
        """The loop request's control mode and BPT must be the selected ones."""
        if req.control_mode is not self.mode or req.bpt != self.bpt:
            raise _wrong(f"a {'BPT_' if req.bpt else ''}{req.control_mode.name} charge loop in a "
                         f"{'BPT ' if self.bpt else ''}{self.mode.name} session")

    def _loop_status(self, req: LoopRequest) -> LoopStatus:
        """The notification, and the meter reading when the EV asked for it or has to confirm it; the next allowed
        requests (MeteringConfirmationReq after asking for it)."""
        note, delay = self.notification()
        confirm = self.controller.receipt_required()
        meter = self.controller.meter20() if (req.meter_requested or confirm or
                                              note is Notification.METERING_CONFIRMATION) else None
        if confirm and note is Notification.NONE and meter is not None:
            note = Notification.METERING_CONFIRMATION
        if note is Notification.METERING_CONFIRMATION and meter is None:
            note = Notification.NONE
        self.last_meter = meter or self.last_meter
        names = set(self._loop_names())
        if note is Notification.METERING_CONFIRMATION:
            names.add("MeteringConfirmationReq")
        self.expected = frozenset(names)
        return LoopStatus(note, delay, meter)

    def _ac_loop(self, body: Body) -> Body:
        """AC_ChargeLoopReq: the controller's target (signed, dynamic) or limit (scheduled)."""
        req = read_ac_loop_req(body)
        self._check_loop(req)
        answer = ACLoopAnswer(0.0, 0.0) if self.standby else self.controller.ac_charge_loop20(self.info, req)
        target = answer.target_power
        if target is None and self.mode is ControlMode.DYNAMIC:
            target = 0.0
        if target is not None and not self.bpt:
            target = max(0.0, target)
        answer = ACLoopAnswer(target, answer.present_power, answer.frequency)
        status = self._loop_status(req)
        return ac_loop_res("OK", self.mode, self.bpt, answer, status, self.plan)

    def _dc_loop(self, body: Body) -> Body:
        """DC_ChargeLoopReq: the controller's output and limits (the target in dynamic mode)."""
        req = read_dc_loop_req(body)
        self._check_loop(req)
        answer = self.controller.dc_charge_loop20(self.info, req)
        if self.standby:
            answer = DCLoopAnswer(answer.voltage, 0.0, answer.limits)
        elif not self.bpt and answer.current < 0:
            answer = DCLoopAnswer(answer.voltage, 0.0, answer.limits, answer.power_limit_achieved,
                                  answer.current_limit_achieved, answer.voltage_limit_achieved)
        status = self._loop_status(req)
        return dc_loop_res("OK", self.mode, self.bpt, answer, status, self.plan)
