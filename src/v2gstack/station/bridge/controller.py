"""The EVSEController of one bridged SECC session: it answers the SECC from the EVSE's hardware (limits, contactors,
isolation test, precharge, DC output, AC draw, meter) and from the session's policy (identity, authorization,
schedules, limits, what the station wants the EV to do). No OCPP here: the policy (policy.py) is the OCPP side.
ISO 15118-20 sessions get the answers of controller20.py (services, BPT limits, tuples, both-way charge loops).

The SECC calls controllers synchronously and they must answer at once; slow work (an OCPP Authorize, a certificate
from the CSMS) runs in the policy's tasks and the answer is Ongoing until it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ...hardware import EvseHardware
from ...iso15118.events import MessageExchanged, SessionEnded, SessionEvent
from ...iso15118.evse import AuthorizationStatus, CableCheckResult, EVSEController, SessionInfo
from ...iso15118.model import (
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    DCOutput,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    SASchedule,
    Service,
    is_dc,
)
from ...iso15118.msglog import MessageRecord
from .controller20 import Controller20, Policy20
from .tracing import SessionLog, SessionTrace


class Policy(Policy20, Protocol):
    """What the controller asks of the OCPP side of its session (policy.SessionPolicy)."""

    def evse_id(self, protocol: str) -> str:
        """The EVSEID to announce."""
        ...

    def payment_options(self) -> list[str]:
        """ExternalPayment, and Contract when Plug & Charge is on."""
        ...

    def energy_modes(self) -> list[str]:
        """The EVSE's energy transfer modes."""
        ...

    def session_started(self, info: SessionInfo) -> None:
        """SessionSetup: the EV is here."""
        ...

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """Authorization: Accepted, Ongoing or Rejected (info.auth_code: the FAILED_* code)."""
        ...

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """The SAScheduleList for the EV's needs."""
        ...

    def limit_w(self) -> float | None:
        """The charging-profile limit now (W; None: no profile limits the EVSE)."""
        ...

    def max_power_w(self) -> float:
        """The EVSE's rating."""
        ...

    def delivering(self) -> bool:
        """A transaction runs: energy may flow."""
        ...

    def contactors_changed(self, closed: bool) -> None:
        """The contactors closed (energy transfer) or opened."""
        ...

    def notification(self) -> str:
        """The EVSENotification to send: None, StopCharging or ReNegotiation."""
        ...

    def ev_drawing(self, power_w: float, soc: float | None) -> None:
        """What the EV takes now (W) and its SoC, for the station."""
        ...

    def on_event(self, event: SessionEvent) -> None:
        """A typed event of the SECC."""
        ...

    def message(self, record: MessageRecord) -> None:
        """A message the SECC received or sent (MessageExchanged's record)."""
        ...

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any],
                                       action: str = "Install") -> dict[str, Any] | str:
        """CertificateInstallationReq or (action Update) CertificateUpdateReq, answered through the CSMS."""
        ...

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """The session ended: report and end the transaction."""
        ...


class BridgeController(Controller20, EVSEController):
    """The EVSEController of one SECC session on a bridged EVSE."""

    def __init__(self, hardware: EvseHardware, policy: Policy, trace: SessionTrace, log: SessionLog,
                 wall: Callable[[], float]) -> None:
        self.hw = hardware
        self.policy = policy
        self.trace = trace
        self.log = log
        self.wall = wall  # the station's wall clock (epoch seconds) for meter readings
        self.contactors = False
        self.ev: EVChargeParameters | None = None
        self.power_w = 0.0  # what the EV takes, as last told to the station

    @property
    def timeline(self) -> Any:
        """The session's timeline."""
        return self.trace.timeline

    def wall_now(self) -> float:
        """The station's wall clock (epoch s)."""
        return self.wall()

    # ----- identity, offer, authorization, schedules: the policy -----

    def evse_id(self, protocol: str) -> str:
        """EVSEID: DIN is hexBinary, -2 the ISO form."""
        return self.policy.evse_id(protocol)

    def payment_options(self) -> list[str]:
        """As the policy says."""
        return self.policy.payment_options()

    def energy_modes(self) -> list[str]:
        """The EVSE's energy transfer modes."""
        return self.policy.energy_modes()

    def services(self) -> list[Service]:
        """No value-added services."""
        return []

    def session_started(self, info: SessionInfo) -> None:
        """SessionSetup."""
        self.log.extra = {**(self.log.extra or {}), "session": info.session_id}
        self.log.info("%s session from %s%s", info.protocol, info.peer, " (resumed)" if info.resumed else "")
        self.policy.session_started(info)

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """As the policy decides."""
        return self.policy.authorize(info)

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """The EV's needs go to the policy, which offers the schedule."""
        self.ev = ev
        return self.policy.schedules(info, ev)

    def on_event(self, event: SessionEvent) -> None:
        """Every event goes to the timeline and to the policy (a message, two in every charge loop, the short way)."""
        if type(event) is MessageExchanged:
            record = event.record
            self.trace.message(record)
            self.policy.message(record)
            return
        self.trace.event(event)
        self.policy.on_event(event)

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """Through the CSMS (Get15118EVCertificate)."""
        return await self.policy.certificate_installation(info, request)

    async def certificate_update(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """Through the CSMS (Get15118EVCertificate, Update)."""
        return await self.policy.certificate_installation(info, request, action="Update")

    # ----- limits -----

    def _phases(self) -> int:
        """The phases the EV charges on."""
        return 1 if self.ev is not None and self.ev.mode == "AC_single_phase_core" else 3

    def _ac_limit(self) -> float:
        """The AC current limit: the hardware's within the charging profile."""
        lim = self.hw.limits
        limit = self.policy.limit_w()
        amps = lim.ac_max_current
        if limit is not None:
            amps = min(amps, limit / (lim.nominal_voltage * self._phases()))
        return round(max(0.0, amps), 1)

    def _dc_power_limit(self) -> float:
        """The DC power limit: the hardware's and the EVSE's within the charging profile."""
        limit = self.policy.limit_w()
        power = min(self.hw.limits.dc_max_power, self.policy.max_power_w())
        return max(0.0, power if limit is None else min(power, limit))

    def ac_parameters(self) -> ACEVSEParameters:
        """AC limits (the maximum current within the charging profiles)."""
        lim = self.hw.limits
        return ACEVSEParameters(lim.nominal_voltage, self._ac_limit(), lim.ac_min_current, lim.nominal_voltage)

    def dc_parameters(self) -> DCEVSEParameters:
        """DC limits (the maximum power within the charging profiles)."""
        lim = self.hw.limits
        return DCEVSEParameters(lim.dc_max_current, self._dc_power_limit(), lim.dc_max_voltage, lim.dc_min_current,
                                lim.dc_min_voltage, lim.dc_peak_current_ripple, current_regulation_tolerance=5.0)

    def status(self) -> EVSEStatus:
        """The policy's notification (StopCharging, ReNegotiation); DC reports the isolation as valid."""
        return EVSEStatus(notification=self.policy.notification(),
                          isolation="Valid" if self.ev and is_dc(self.ev.mode) else None)

    # ----- the power stage: the hardware -----

    def cable_check(self) -> CableCheckResult:
        """The hardware's isolation test."""
        result = self.hw.isolation_test()
        if result.fault:
            self.trace.state("IsolationFault", isolation=result.level)
        return CableCheckResult(result.done, result.level)

    def precharge(self, voltage: float, current: float) -> float:
        """The hardware drives the output toward the EV's target voltage."""
        return self.hw.precharge(voltage, current)

    def set_contactors(self, closed: bool) -> bool:
        """Energy transfer starts or stops (False: the contactors failed)."""
        if not self.hw.set_contactors(closed):
            self.trace.state("ContactorFault")
            return False
        self.contactors = closed
        self.policy.contactors_changed(closed)
        self.trace.state("ContactorsClosed" if closed else "ContactorsOpen")
        if not closed:
            self._draw(0.0)
        return True

    def _draw(self, power_w: float, soc: float | None = None) -> None:
        """Tell the station what the EV takes now (it draws through the hardware, whose meter both protocols report)
        and its SoC."""
        if power_w != self.power_w or soc is not None:
            self.power_w = power_w
            self.policy.ev_drawing(power_w, soc)

    def ac_max_current(self) -> float | None:
        """AC charge loop: the EV draws up to the limit current on its phases."""
        lim = self.hw.limits
        limit = self._ac_limit()
        amps = min(limit, self.ev.max_current if self.ev and self.ev.max_current else lim.ac_max_current)
        if not (self.contactors and self.policy.delivering() and amps >= lim.ac_min_current):
            amps = 0.0
        self.hw.ac_draw(amps, self._phases())
        self._draw(amps * lim.nominal_voltage * self._phases())
        return limit

    def current_demand(self, demand: CurrentDemand) -> DCOutput:
        """DC charge loop: the hardware follows the EV's targets within its limits and the station's power limit."""
        lim = self.hw.limits
        out = self.hw.deliver_dc(demand.target_voltage, demand.target_current)
        self._draw(out.power, soc=float(demand.status.soc) if demand.status else None)
        return DCOutput(voltage=out.voltage, current=round(out.current, 1), current_limit_achieved=out.current_limited,
                        voltage_limit_achieved=out.voltage_limited, power_limit_achieved=out.power_limited,
                        max_voltage=lim.dc_max_voltage, max_current=lim.dc_max_current,
                        max_power=self._dc_power_limit())

    def welding_detection(self) -> float:
        """The output voltage the hardware measures."""
        return self.hw.output_voltage()

    def meter(self) -> MeterReading | None:
        """The hardware meter's import register: the same value OCPP reports."""
        reading = self.hw.meter()
        return MeterReading(reading.meter_id[:32], int(reading.import_wh), int(self.wall_now()))

    def receipt_required(self) -> bool:
        """EIM: no metering receipt."""
        return False

    # ----- the end -----

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """The EV is gone: the contactors open if the session did not open them, nothing flows; the policy reports
        the end."""
        self.log.info("session ended: %s%s", ended.kind, f" ({ended.iso_code})" if ended.iso_code else "")
        if self.contactors:
            self.hw.set_contactors(False)
            self.contactors = False
            self.policy.contactors_changed(False)
            self.trace.state("ContactorsOpen", reason="session ended")
        if info is not None:
            self._draw(0.0)
        self.policy.session_ended(info, ended)
