"""DIN SPEC 70121 messages (DC, EIM) in the EXI JSON view: what DIN spells differently from ISO 15118-2.

Differences: ServicePaymentSelection and ContractAuthentication names, DateTimeNow, hexBinary EVSEID, PaymentOptions
and a single EnergyTransferType, EVRequestedEnergyTransferType, PMax as a plain short (W) with a PMaxScheduleID,
mandatory SAScheduleList, ReadyToChargeState instead of ChargeProgress, an empty SessionStopReq, DIN's own
DC_EVSEStatus/AC_EVSEStatus fields, and no EVSEID/SAScheduleTupleID/MeterInfo in CurrentDemandRes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, ClassVar

from ..model import (
    AC_MODES,
    STEPS_ISO2,
    ACEVSEParameters,
    DCEVSEParameters,
    DCEVStatus,
    DCOutput,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    PMaxEntry,
    ProfileEntry,
    SASchedule,
    Service,
    Step,
    is_dc,
)
from .envelope import pv, short
from .iso2 import CHARGE_SERVICE_ID, Body, Iso2Messages

_DIN_ISOLATION = frozenset({"Invalid", "Valid", "Warning", "Fault"})


class DinMessages(Iso2Messages):
    """Message construction and reading for DIN SPEC 70121 (namespace `din`)."""

    key = "din"
    ns = "din"
    names: ClassVar[Mapping[Step, str]] = MappingProxyType({
        **Iso2Messages.names, Step.PAYMENT_SERVICE_SELECTION: "ServicePaymentSelection",
        Step.AUTHORIZATION: "ContractAuthentication"})
    wrong_mode_code = "FAILED_WrongEnergyTransferType"
    no_charge_service_code = "FAILED_ServiceSelectionInvalid"
    contactor_error_code = "FAILED_PowerDeliveryNotApplied"
    placeholder_evse_id = "00"
    steps_in_use = STEPS_ISO2 - {Step.SERVICE_DETAIL, Step.PAYMENT_DETAILS, Step.CERTIFICATE_INSTALLATION,
                                      Step.CERTIFICATE_UPDATE, Step.CHARGING_STATUS, Step.METERING_RECEIPT}

    # ----- shared pieces -----

    def evse_status(self, st: EVSEStatus, dc: bool) -> tuple[str, Body]:
        """DIN's DC_EVSEStatus / AC_EVSEStatus (no No_IMD isolation level; AC has PowerSwitchClosed)."""
        if dc:
            out: Body = {"EVSEStatusCode": st.status_code, "NotificationMaxDelay": st.notification_max_delay,
                         "EVSENotification": st.notification}
            if st.isolation in _DIN_ISOLATION:
                out["EVSEIsolationStatus"] = st.isolation
            return "DC_EVSEStatus", out
        return "AC_EVSEStatus", {"PowerSwitchClosed": st.power_switch_closed, "RCD": st.rcd,
                                 "NotificationMaxDelay": st.notification_max_delay,
                                 "EVSENotification": st.notification}

    def meter_info(self, m: MeterReading) -> Body:
        """MeterInfo (DIN: MeterReading is a PhysicalValue in Wh)."""
        out: Body = {"MeterID": m.meter_id, "MeterReading": pv(max(0, m.wh), "Wh")}
        if m.timestamp is not None:
            out["TMeter"] = m.timestamp
        return out

    def pmax(self, watts: float) -> Any:
        """DIN PMax: a plain short in W."""
        return max(0, short(watts))

    def read_pmax(self, v: Any) -> float:
        """Watts from a DIN PMax."""
        return float(v)

    def sa_schedule_list(self, schedules: list[SASchedule]) -> Body:
        """SAScheduleList content (DIN: PMaxScheduleID, no sales tariff)."""
        return {"SAScheduleTuple": [
            {"SAScheduleTupleID": s.tuple_id, "PMaxSchedule": {"PMaxScheduleID": s.tuple_id, "PMaxScheduleEntry": [
                {"RelativeTimeInterval": self._interval(e.start, e.duration), "PMax": self.pmax(e.pmax)}
                for e in s.entries]}}
            for s in schedules]}

    def charging_profile(self, tuple_id: int, entries: list[ProfileEntry]) -> Body:
        """ChargingProfile content (DIN carries the SAScheduleTupleID here)."""
        return {"SAScheduleTupleID": tuple_id, "ProfileEntry": [
            {"ChargingProfileEntryStart": e.start, "ChargingProfileEntryMaxPower": self.pmax(e.max_power)}
            for e in entries]}

    # ----- SECC: responses -----

    def session_setup_res(self, code: str, evse_id: str, timestamp: int | None) -> Body:
        """SessionSetupRes (DateTimeNow)."""
        out: Body = {"ResponseCode": code, "EVSEID": evse_id}
        if timestamp is not None:
            out["DateTimeNow"] = timestamp
        return out

    def service_discovery_res(self, code: str, payment_options: list[str], modes: list[str],
                              services: list[Service]) -> Body:
        """ServiceDiscoveryRes with the DC charge service (one EnergyTransferType)."""
        transfer = next((m for m in modes if is_dc(m)), "DC_extended")
        return {"ResponseCode": code, "PaymentOptions": {"PaymentOption": list(payment_options)},
                "ChargeService": {"ServiceTag": {"ServiceID": CHARGE_SERVICE_ID, "ServiceCategory": "EVCharging"},
                                  "FreeService": False, "EnergyTransferType": transfer}}

    def authorization_res(self, code: str, processing: str) -> Body:
        """ContractAuthenticationRes (DIN knows only Finished and Ongoing)."""
        return {"ResponseCode": code, "EVSEProcessing": "Finished" if processing == "Finished" else "Ongoing"}

    def cpd_res(self, code: str, processing: str, schedules: list[SASchedule] | None,
                params: ACEVSEParameters | DCEVSEParameters, status: EVSEStatus) -> Body:
        """ChargeParameterDiscoveryRes; DIN requires SAScheduleList, so a zero schedule stands in while Ongoing."""
        body = super().cpd_res(code, "Finished" if processing == "Finished" else "Ongoing",
                               schedules or [SASchedule(1, (PMaxEntry(0, 0, 86400),))], params, status)
        return body

    def ac_evse_parameters(self, p: ACEVSEParameters, status: EVSEStatus) -> Body:
        """DIN AC_EVSEChargeParameter content."""
        return {"AC_EVSEStatus": self.evse_status(status, False)[1], "EVSEMaxVoltage": pv(p.max_voltage, "V"),
                "EVSEMaxCurrent": pv(p.max_current, "A"), "EVSEMinCurrent": pv(p.min_current, "A")}

    def current_demand_res(self, code: str, status: EVSEStatus, out: DCOutput, evse_id: str, tuple_id: int,
                           meter: MeterReading | None, receipt_required: bool | None) -> Body:
        """CurrentDemandRes (DIN has no EVSEID, SAScheduleTupleID, MeterInfo or ReceiptRequired here)."""
        return self._current_demand_common(code, status, out)

    def metering_receipt_res(self, code: str, status: EVSEStatus, dc: bool) -> Body:
        """MeteringReceiptRes (DIN: AC_EVSEStatus only)."""
        return {"ResponseCode": code, "AC_EVSEStatus": self.evse_status(status, False)[1]}

    def _failed_other(self, step: Step, code: str) -> Body:
        """FAILED responses of the DIN messages this stack does not otherwise build."""
        if step is Step.PAYMENT_DETAILS:
            return {"ResponseCode": code, "GenChallenge": "", "DateTimeNow": 0}
        if step in (Step.CERTIFICATE_INSTALLATION, Step.CERTIFICATE_UPDATE):
            out: Body = {"Id": "id1", "ResponseCode": code, "ContractSignatureCertChain": {"Certificate": ""},
                         "ContractSignatureEncryptedPrivateKey": "", "DHParams": "", "ContractID": ""}
            if step is Step.CERTIFICATE_UPDATE:
                out["RetryCounter"] = 0
            return out
        return {"ResponseCode": code}

    # ----- SECC: reading requests -----

    def read_cpd_req(self, body: Body) -> EVChargeParameters:
        """EVChargeParameters of ChargeParameterDiscoveryReq (EVRequestedEnergyTransferType)."""
        return self._read_ev_parameters(body["EVRequestedEnergyTransferType"], body)

    def read_power_delivery_req(self, body: Body) -> tuple[str, int | None, list[ProfileEntry], DCEVStatus | None,
                                                           bool]:
        """(Start|Stop from ReadyToChargeState, tuple id from the profile, profile, DC_EVStatus, ChargingComplete)."""
        dcp = body.get("DC_EVPowerDeliveryParameter")
        status = self.read_dc_ev_status(dcp["DC_EVStatus"]) if dcp else None
        complete = bool(dcp["ChargingComplete"]) if dcp else False
        profile = body.get("ChargingProfile")
        tuple_id = int(profile["SAScheduleTupleID"]) if profile else None
        return ("Start" if body["ReadyToChargeState"] else "Stop", tuple_id, self.read_charging_profile(profile),
                status, complete)

    def read_session_stop_req(self, body: Body) -> str:
        """DIN SessionStopReq is empty: always Terminate."""
        return "Terminate"

    # ----- EVCC: requests -----

    def cpd_req(self, p: EVChargeParameters) -> Body:
        """ChargeParameterDiscoveryReq (EVRequestedEnergyTransferType)."""
        out: Body = {"EVRequestedEnergyTransferType": p.mode}
        out.update(self._ev_parameters(p))
        return out

    def _ev_parameters(self, p: EVChargeParameters) -> Body:
        """DIN EV parameters: DC has no DepartureTime, AC requires it."""
        if is_dc(p.mode):
            return super()._ev_parameters(replace(p, departure_time=None))
        return super()._ev_parameters(replace(p, departure_time=p.departure_time or 0))

    def power_delivery_req(self, progress: str, tuple_id: int, profile: list[ProfileEntry] | None,
                           dc_status: DCEVStatus | None, complete: bool, bulk_complete: bool | None = None) -> Body:
        """PowerDeliveryReq (ReadyToChargeState true for Start)."""
        out: Body = {"ReadyToChargeState": progress == "Start"}
        if profile:
            out["ChargingProfile"] = self.charging_profile(tuple_id, profile)
        if dc_status is not None:
            out["DC_EVPowerDeliveryParameter"] = self._dc_power_delivery(dc_status, complete, bulk_complete)
        return out

    def session_stop_req(self, kind: str) -> Body:
        """DIN SessionStopReq is empty (no Pause)."""
        return {}

    # ----- EVCC: reading responses -----

    def read_service_discovery_res(self, body: Body) -> tuple[list[str], list[str], int, list[Service]]:
        """(payment options, [EnergyTransferType], charge ServiceID, no services)."""
        cs = body["ChargeService"]
        transfer = cs["EnergyTransferType"]
        modes = [transfer]
        if transfer not in AC_MODES and not is_dc(transfer):  # combined types such as AC_core3p_DC_extended
            modes.append("DC_extended")
        return list(body["PaymentOptions"]["PaymentOption"]), modes, int(cs["ServiceTag"]["ServiceID"]), []
