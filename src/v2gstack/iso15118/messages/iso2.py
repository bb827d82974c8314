"""ISO 15118-2 messages (EIM, AC and DC) in the EXI JSON view: builders for both roles and readers of the other's.

Field names follow the -2 XSDs (V2G_CI_MsgBody.xsd, V2G_CI_MsgDataTypes.xsd). `DinMessages` subclasses this and
overrides what DIN SPEC 70121 spells differently.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from ..model import (
    STEPS_ISO2,
    ACEVSEParameters,
    CurrentDemand,
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
    TariffEntry,
    is_dc,
)
from .envelope import pv, v2g_message, value

Body = dict[str, Any]
CHARGE_SERVICE_ID = 1


class Iso2Messages:
    """Message construction and reading for ISO 15118-2 (namespace `iso2`)."""

    key = "iso2"
    ns = "iso2"
    names: ClassVar[Mapping[Step, str]] = MappingProxyType({s: s.value for s in STEPS_ISO2})
    wrong_mode_code = "FAILED_WrongEnergyTransferMode"
    no_charge_service_code = "FAILED_NoChargeServiceSelected"
    contactor_error_code = "FAILED_ContactorError"
    placeholder_evse_id = "ZZ00000"
    steps_in_use = STEPS_ISO2

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[Step, bool]] = {}
        for step, base in self.names.items():
            self._by_name[base + "Req"] = (step, True)
            self._by_name[base + "Res"] = (step, False)

    # ----- names and envelope -----

    def req_name(self, step: Step) -> str:
        """The request element name of `step` in this protocol."""
        return self.names[step] + "Req"

    def res_name(self, step: Step) -> str:
        """The response element name of `step` in this protocol."""
        return self.names[step] + "Res"

    def lookup(self, name: str) -> tuple[Step, bool] | None:
        """(step, is_request) for a message element name, None for names that are no message pair of ours."""
        return self._by_name.get(name)

    def request(self, session_id: str, step: Step, body: Body,
                signature: dict[str, Any] | None = None) -> dict[str, Any]:
        """A whole request document (with a header Signature for the signed requests of Plug & Charge)."""
        return v2g_message(session_id, self.req_name(step), body, signature)

    def response(self, session_id: str, step: Step, body: Body) -> dict[str, Any]:
        """A whole response document."""
        return v2g_message(session_id, self.res_name(step), body)

    # ----- shared pieces -----

    def evse_status(self, st: EVSEStatus, dc: bool) -> tuple[str, Body]:
        """(element name, content) of AC_EVSEStatus or DC_EVSEStatus."""
        if dc:
            out: Body = {"NotificationMaxDelay": st.notification_max_delay, "EVSENotification": st.notification,
                         "EVSEStatusCode": st.status_code}
            if st.isolation is not None:
                out["EVSEIsolationStatus"] = st.isolation
            return "DC_EVSEStatus", out
        return "AC_EVSEStatus", {"NotificationMaxDelay": st.notification_max_delay,
                                 "EVSENotification": st.notification, "RCD": st.rcd}

    def read_evse_status(self, body: Body) -> EVSEStatus:
        """The EVSEStatus found in a response body (AC or DC), a neutral one when absent."""
        st = body.get("DC_EVSEStatus") or body.get("AC_EVSEStatus")
        if st is None:
            return EVSEStatus()
        return EVSEStatus(notification=st.get("EVSENotification", "None"),
                          notification_max_delay=int(st.get("NotificationMaxDelay", 0)), rcd=bool(st.get("RCD")),
                          isolation=st.get("EVSEIsolationStatus"), status_code=st.get("EVSEStatusCode", "EVSE_Ready"),
                          power_switch_closed=bool(st.get("PowerSwitchClosed")))

    def dc_ev_status(self, st: DCEVStatus) -> Body:
        """DC_EVStatus content."""
        return {"EVReady": st.ready, "EVErrorCode": st.error_code, "EVRESSSOC": st.soc}

    def read_dc_ev_status(self, d: Body | None) -> DCEVStatus:
        """DCEVStatus from DC_EVStatus content."""
        if d is None:
            return DCEVStatus(ready=False, error_code="NoData")
        return DCEVStatus(ready=bool(d["EVReady"]), error_code=d["EVErrorCode"], soc=int(d["EVRESSSOC"]))

    def meter_info(self, m: MeterReading) -> Body:
        """MeterInfo content (-2: MeterReading is an unsignedLong in Wh)."""
        out: Body = {"MeterID": m.meter_id, "MeterReading": max(0, int(m.wh))}
        if m.timestamp is not None:
            out["TMeter"] = m.timestamp
        return out

    def read_meter_info(self, d: Body | None) -> MeterReading | None:
        """MeterReading from MeterInfo content."""
        if d is None:
            return None
        reading = d.get("MeterReading", 0)
        wh = value(reading) if isinstance(reading, dict) else reading
        return MeterReading(d["MeterID"], int(wh or 0), d.get("TMeter"))

    def _interval(self, start: int, duration: int | None) -> Body:
        """RelativeTimeInterval content."""
        out: Body = {"start": start}
        if duration is not None:
            out["duration"] = duration
        return out

    def pmax(self, watts: float) -> Any:
        """A PMax value (-2: PhysicalValue in W)."""
        return pv(watts, "W")

    def read_pmax(self, v: Any) -> float:
        """Watts from a PMax value."""
        return float(value(v) or 0.0)

    def sa_schedule_list(self, schedules: list[SASchedule]) -> Body:
        """SAScheduleList content."""
        tuples = []
        for s in schedules:
            t: Body = {"SAScheduleTupleID": s.tuple_id, "PMaxSchedule": {"PMaxScheduleEntry": [
                {"RelativeTimeInterval": self._interval(e.start, e.duration), "PMax": self.pmax(e.pmax)}
                for e in s.entries]}}
            if s.tariff:
                t["SalesTariff"] = {"Id": f"tariff{s.tuple_id}", "SalesTariffID": s.tariff_id,
                                    "NumEPriceLevels": s.price_levels, "SalesTariffEntry": [
                                        {"RelativeTimeInterval": self._interval(e.start, e.duration),
                                         "EPriceLevel": e.price_level} for e in s.tariff]}
            tuples.append(t)
        return {"SAScheduleTuple": tuples}

    def read_sa_schedule_list(self, d: Body | None) -> list[SASchedule]:
        """SASchedules from SAScheduleList content."""
        if not d:
            return []
        out = []
        for t in d.get("SAScheduleTuple", []):
            entries = tuple(PMaxEntry(e["RelativeTimeInterval"]["start"], self.read_pmax(e["PMax"]),
                                      e["RelativeTimeInterval"].get("duration"))
                            for e in t["PMaxSchedule"]["PMaxScheduleEntry"])
            tariff = None
            if "SalesTariff" in t:
                tariff = tuple(TariffEntry(e["RelativeTimeInterval"]["start"], e.get("EPriceLevel", 0),
                                           e["RelativeTimeInterval"].get("duration"))
                               for e in t["SalesTariff"]["SalesTariffEntry"])
            out.append(SASchedule(int(t["SAScheduleTupleID"]), entries, tariff))
        return out

    def charging_profile(self, tuple_id: int, entries: list[ProfileEntry]) -> Body:
        """ChargingProfile content."""
        out = []
        for e in entries:
            p: Body = {"ChargingProfileEntryStart": e.start, "ChargingProfileEntryMaxPower": self.pmax(e.max_power)}
            if e.max_phases is not None:
                p["ChargingProfileEntryMaxNumberOfPhasesInUse"] = e.max_phases
            out.append(p)
        return {"ProfileEntry": out}

    def read_charging_profile(self, d: Body | None) -> list[ProfileEntry]:
        """ProfileEntries from ChargingProfile content."""
        if not d:
            return []
        return [ProfileEntry(int(p["ChargingProfileEntryStart"]), self.read_pmax(p["ChargingProfileEntryMaxPower"]),
                             p.get("ChargingProfileEntryMaxNumberOfPhasesInUse")) for p in d["ProfileEntry"]]

    # ----- SECC: responses -----

    def session_setup_res(self, code: str, evse_id: str, timestamp: int | None) -> Body:
        """SessionSetupRes."""
        out: Body = {"ResponseCode": code, "EVSEID": evse_id}
        if timestamp is not None:
            out["EVSETimeStamp"] = timestamp
        return out

    def service_discovery_res(self, code: str, payment_options: list[str], modes: list[str],
                              services: list[Service]) -> Body:
        """ServiceDiscoveryRes with the charge service (ServiceID 1) and optional value-added services."""
        out: Body = {
            "ResponseCode": code,
            "PaymentOptionList": {"PaymentOption": list(payment_options)},
            "ChargeService": {"ServiceID": CHARGE_SERVICE_ID, "ServiceName": "AC_DC_Charging",
                              "ServiceCategory": "EVCharging", "FreeService": False,
                              "SupportedEnergyTransferMode": {"EnergyTransferMode": list(modes)}},
        }
        if services:
            out["ServiceList"] = {"Service": [{"ServiceID": s.service_id, "ServiceName": s.name,
                                               "ServiceCategory": s.category, "FreeService": s.free}
                                              for s in services]}
        return out

    def _parameter(self, name: str, v: bool | int | str) -> Body:
        """One Parameter of a ParameterSet."""
        if isinstance(v, bool):
            return {"Name": name, "boolValue": v}
        if isinstance(v, int):
            return {"Name": name, "intValue": v}
        return {"Name": name, "stringValue": str(v)}

    def service_detail_res(self, code: str, service_id: int, service: Service | None) -> Body:
        """ServiceDetailRes with the service's parameter sets."""
        out: Body = {"ResponseCode": code, "ServiceID": service_id}
        if service is not None and service.parameter_sets:
            out["ServiceParameterList"] = {"ParameterSet": [
                {"ParameterSetID": set_id, "Parameter": [self._parameter(k, v) for k, v in params.items()]}
                for set_id, params in service.parameter_sets.items()]}
        return out

    def payment_selection_res(self, code: str) -> Body:
        """PaymentServiceSelectionRes."""
        return {"ResponseCode": code}

    def payment_details_res(self, code: str, challenge: bytes, timestamp: int) -> Body:
        """PaymentDetailsRes: the 16-byte GenChallenge the EV signs in AuthorizationReq."""
        return {"ResponseCode": code, "GenChallenge": base64.b64encode(challenge).decode(), "EVSETimeStamp": timestamp}

    def authorization_res(self, code: str, processing: str) -> Body:
        """AuthorizationRes."""
        return {"ResponseCode": code, "EVSEProcessing": str(processing)}

    def cpd_res(self, code: str, processing: str, schedules: list[SASchedule] | None,
                params: ACEVSEParameters | DCEVSEParameters, status: EVSEStatus) -> Body:
        """ChargeParameterDiscoveryRes; SAScheduleList only when there are schedules."""
        out: Body = {"ResponseCode": code, "EVSEProcessing": str(processing)}
        if schedules:
            out["SAScheduleList"] = self.sa_schedule_list(schedules)
        if isinstance(params, DCEVSEParameters):
            out["DC_EVSEChargeParameter"] = self.dc_evse_parameters(params, status)
        else:
            out["AC_EVSEChargeParameter"] = self.ac_evse_parameters(params, status)
        return out

    def ac_evse_parameters(self, p: ACEVSEParameters, status: EVSEStatus) -> Body:
        """AC_EVSEChargeParameter content."""
        return {"AC_EVSEStatus": self.evse_status(status, False)[1], "EVSENominalVoltage": pv(p.nominal_voltage, "V"),
                "EVSEMaxCurrent": pv(p.max_current, "A")}

    def dc_evse_parameters(self, p: DCEVSEParameters, status: EVSEStatus) -> Body:
        """DC_EVSEChargeParameter content."""
        out: Body = {"DC_EVSEStatus": self.evse_status(status, True)[1],
                     "EVSEMaximumCurrentLimit": pv(p.max_current, "A"), "EVSEMaximumPowerLimit": pv(p.max_power, "W"),
                     "EVSEMaximumVoltageLimit": pv(p.max_voltage, "V"),
                     "EVSEMinimumCurrentLimit": pv(p.min_current, "A"),
                     "EVSEMinimumVoltageLimit": pv(p.min_voltage, "V"),
                     "EVSEPeakCurrentRipple": pv(p.peak_current_ripple, "A")}
        if p.current_regulation_tolerance is not None:
            out["EVSECurrentRegulationTolerance"] = pv(p.current_regulation_tolerance, "A")
        if p.energy_to_be_delivered is not None:
            out["EVSEEnergyToBeDelivered"] = pv(p.energy_to_be_delivered, "Wh")
        return out

    def power_delivery_res(self, code: str, status: EVSEStatus, dc: bool) -> Body:
        """PowerDeliveryRes."""
        name, st = self.evse_status(status, dc)
        return {"ResponseCode": code, name: st}

    def charging_status_res(self, code: str, evse_id: str, tuple_id: int, max_current: float | None,
                            meter: MeterReading | None, receipt_required: bool, status: EVSEStatus) -> Body:
        """ChargingStatusRes (AC charge loop)."""
        out: Body = {"ResponseCode": code, "EVSEID": evse_id, "SAScheduleTupleID": tuple_id}
        if max_current is not None:
            out["EVSEMaxCurrent"] = pv(max_current, "A")
        if meter is not None:
            out["MeterInfo"] = self.meter_info(meter)
        out["ReceiptRequired"] = receipt_required
        out["AC_EVSEStatus"] = self.evse_status(status, False)[1]
        return out

    def metering_receipt_res(self, code: str, status: EVSEStatus, dc: bool) -> Body:
        """MeteringReceiptRes."""
        name, st = self.evse_status(status, dc)
        return {"ResponseCode": code, name: st}

    def cable_check_res(self, code: str, status: EVSEStatus, processing: str) -> Body:
        """CableCheckRes."""
        return {"ResponseCode": code, "DC_EVSEStatus": self.evse_status(status, True)[1],
                "EVSEProcessing": str(processing)}

    def precharge_res(self, code: str, status: EVSEStatus, voltage: float) -> Body:
        """PreChargeRes."""
        return {"ResponseCode": code, "DC_EVSEStatus": self.evse_status(status, True)[1],
                "EVSEPresentVoltage": pv(voltage, "V")}

    def current_demand_res(self, code: str, status: EVSEStatus, out: DCOutput, evse_id: str, tuple_id: int,
                           meter: MeterReading | None, receipt_required: bool | None) -> Body:
        """CurrentDemandRes (DC charge loop)."""
        body = self._current_demand_common(code, status, out)
        body["EVSEID"] = evse_id
        body["SAScheduleTupleID"] = tuple_id
        if meter is not None:
            body["MeterInfo"] = self.meter_info(meter)
        if receipt_required is not None:
            body["ReceiptRequired"] = receipt_required
        return body

    def _current_demand_common(self, code: str, status: EVSEStatus, out: DCOutput) -> Body:
        """The CurrentDemandRes fields DIN and -2 share."""
        body: Body = {"ResponseCode": code, "DC_EVSEStatus": self.evse_status(status, True)[1],
                      "EVSEPresentVoltage": pv(out.voltage, "V"), "EVSEPresentCurrent": pv(out.current, "A"),
                      "EVSECurrentLimitAchieved": out.current_limit_achieved,
                      "EVSEVoltageLimitAchieved": out.voltage_limit_achieved,
                      "EVSEPowerLimitAchieved": out.power_limit_achieved}
        if out.max_voltage is not None:
            body["EVSEMaximumVoltageLimit"] = pv(out.max_voltage, "V")
        if out.max_current is not None:
            body["EVSEMaximumCurrentLimit"] = pv(out.max_current, "A")
        if out.max_power is not None:
            body["EVSEMaximumPowerLimit"] = pv(out.max_power, "W")
        return body

    def welding_detection_res(self, code: str, status: EVSEStatus, voltage: float) -> Body:
        """WeldingDetectionRes."""
        return {"ResponseCode": code, "DC_EVSEStatus": self.evse_status(status, True)[1],
                "EVSEPresentVoltage": pv(voltage, "V")}

    def session_stop_res(self, code: str) -> Body:
        """SessionStopRes."""
        return {"ResponseCode": code}

    def failed_res(self, step: Step, code: str, dc: bool) -> Body:
        """A FAILED_* response for any request: mandatory elements filled with neutral placeholder values."""
        st = EVSEStatus(status_code="EVSE_NotReady", isolation=None)
        zero_ac = ACEVSEParameters(0, 0, 0, 0)
        zero_dc = DCEVSEParameters(0, 0, 0, 0, 0, 0)
        eid = self.placeholder_evse_id
        match step:
            case Step.SESSION_SETUP:
                return self.session_setup_res(code, eid, None)
            case Step.SERVICE_DISCOVERY:
                return self.service_discovery_res(code, ["ExternalPayment"], ["DC_extended" if dc else
                                                                              "AC_three_phase_core"], [])
            case Step.SERVICE_DETAIL:
                return self.service_detail_res(code, 0, None)
            case Step.AUTHORIZATION:
                return self.authorization_res(code, "Finished")
            case Step.CHARGE_PARAMETER_DISCOVERY:
                return self.cpd_res(code, "Finished", None, zero_dc if dc else zero_ac, st)
            case Step.POWER_DELIVERY:
                return self.power_delivery_res(code, st, dc)
            case Step.METERING_RECEIPT:
                return self.metering_receipt_res(code, st, dc)
            case Step.CHARGING_STATUS:
                return self.charging_status_res(code, eid, 1, None, None, False, st)
            case Step.CABLE_CHECK:
                return self.cable_check_res(code, st, "Finished")
            case Step.PRE_CHARGE:
                return self.precharge_res(code, st, 0)
            case Step.CURRENT_DEMAND:
                return self.current_demand_res(code, st, DCOutput(0, 0), eid, 1, None, None)
            case Step.WELDING_DETECTION:
                return self.welding_detection_res(code, st, 0)
            case _:
                return self._failed_other(step, code)

    def _failed_other(self, step: Step, code: str) -> Body:
        """FAILED responses of messages this EIM stack does not otherwise build (PnC ones)."""
        empty = base64.b64encode(b"").decode()
        if step is Step.PAYMENT_DETAILS:
            return {"ResponseCode": code, "GenChallenge": base64.b64encode(bytes(16)).decode(), "EVSETimeStamp": 0}
        if step in (Step.CERTIFICATE_INSTALLATION, Step.CERTIFICATE_UPDATE):
            return {"ResponseCode": code, "SAProvisioningCertificateChain": {"Certificate": empty},
                    "ContractSignatureCertChain": {"Id": "id1", "Certificate": empty},
                    "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": empty},
                    "DHpublickey": {"Id": "id3", "value": empty}, "eMAID": {"Id": "id4", "value": "ZZ000000000000"}}
        return {"ResponseCode": code}  # PaymentServiceSelection, SessionStop

    # ----- SECC: reading requests -----

    def read_session_setup_req(self, body: Body) -> str:
        """EVCCID."""
        return str(body["EVCCID"])

    def read_service_detail_req(self, body: Body) -> int:
        """ServiceID."""
        return int(body["ServiceID"])

    def read_payment_selection_req(self, body: Body) -> tuple[str, list[int]]:
        """(SelectedPaymentOption, selected ServiceIDs)."""
        services = body["SelectedServiceList"]["SelectedService"]
        return body["SelectedPaymentOption"], [int(s["ServiceID"]) for s in services]

    def read_cpd_req(self, body: Body) -> EVChargeParameters:
        """EVChargeParameters of ChargeParameterDiscoveryReq (wrong-kind parameters give mode/params mismatch)."""
        mode = body["RequestedEnergyTransferMode"]
        return self._read_ev_parameters(mode, body)

    def _read_ev_parameters(self, mode: str, body: Body) -> EVChargeParameters:
        """AC_ or DC_EVChargeParameter, whichever is present."""
        ac = body.get("AC_EVChargeParameter")
        if ac is not None:
            return EVChargeParameters(mode=mode, departure_time=ac.get("DepartureTime"),
                                      energy_amount=value(ac["EAmount"]), max_voltage=value(ac["EVMaxVoltage"]),
                                      max_current=value(ac["EVMaxCurrent"]), min_current=value(ac["EVMinCurrent"]))
        dc = body.get("DC_EVChargeParameter")
        if dc is not None:
            return EVChargeParameters(
                mode=mode, departure_time=dc.get("DepartureTime"), status=self.read_dc_ev_status(dc["DC_EVStatus"]),
                max_current=value(dc["EVMaximumCurrentLimit"]), max_voltage=value(dc["EVMaximumVoltageLimit"]),
                max_power=value(dc.get("EVMaximumPowerLimit")), energy_capacity=value(dc.get("EVEnergyCapacity")),
                energy_request=value(dc.get("EVEnergyRequest")), full_soc=dc.get("FullSOC"),
                bulk_soc=dc.get("BulkSOC"))
        return EVChargeParameters(mode=mode)

    def read_power_delivery_req(self, body: Body) -> tuple[str, int | None, list[ProfileEntry], DCEVStatus | None,
                                                           bool]:
        """(ChargeProgress, SAScheduleTupleID, profile, DC_EVStatus, ChargingComplete)."""
        dcp = body.get("DC_EVPowerDeliveryParameter")
        status = self.read_dc_ev_status(dcp["DC_EVStatus"]) if dcp else None
        complete = bool(dcp["ChargingComplete"]) if dcp else False
        return (body["ChargeProgress"], int(body["SAScheduleTupleID"]),
                self.read_charging_profile(body.get("ChargingProfile")), status, complete)

    def read_session_stop_req(self, body: Body) -> str:
        """ChargingSession: Terminate or Pause."""
        return str(body["ChargingSession"])

    def read_metering_receipt_req(self, body: Body) -> tuple[str, int | None, MeterReading | None]:
        """(SessionID, SAScheduleTupleID, MeterInfo)."""
        return body["SessionID"], body.get("SAScheduleTupleID"), self.read_meter_info(body.get("MeterInfo"))

    def read_precharge_req(self, body: Body) -> tuple[DCEVStatus, float, float]:
        """(DC_EVStatus, EVTargetVoltage, EVTargetCurrent)."""
        return (self.read_dc_ev_status(body["DC_EVStatus"]), value(body["EVTargetVoltage"]) or 0.0,
                value(body["EVTargetCurrent"]) or 0.0)

    def read_current_demand_req(self, body: Body) -> CurrentDemand:
        """CurrentDemandReq content."""
        return CurrentDemand(
            status=self.read_dc_ev_status(body["DC_EVStatus"]), target_current=value(body["EVTargetCurrent"]) or 0.0,
            target_voltage=value(body["EVTargetVoltage"]) or 0.0, max_voltage=value(body.get("EVMaximumVoltageLimit")),
            max_current=value(body.get("EVMaximumCurrentLimit")), max_power=value(body.get("EVMaximumPowerLimit")),
            bulk_complete=body.get("BulkChargingComplete"), complete=bool(body["ChargingComplete"]),
            remaining_time_full=value(body.get("RemainingTimeToFullSoC")),
            remaining_time_bulk=value(body.get("RemainingTimeToBulkSoC")))

    # ----- EVCC: requests -----

    def session_setup_req(self, evcc_id: str) -> Body:
        """SessionSetupReq."""
        return {"EVCCID": evcc_id}

    def service_discovery_req(self) -> Body:
        """ServiceDiscoveryReq without filters."""
        return {}

    def service_detail_req(self, service_id: int) -> Body:
        """ServiceDetailReq."""
        return {"ServiceID": service_id}

    def payment_selection_req(self, option: str, service_ids: list[int]) -> Body:
        """PaymentServiceSelectionReq."""
        return {"SelectedPaymentOption": option,
                "SelectedServiceList": {"SelectedService": [{"ServiceID": i} for i in service_ids]}}

    def authorization_req(self, challenge: bytes | None = None, ref_id: str = "ID1") -> Body:
        """AuthorizationReq: empty for EIM; with Plug & Charge the Id the signature references and the GenChallenge."""
        if challenge is None:
            return {}
        return {"Id": ref_id, "GenChallenge": base64.b64encode(challenge).decode()}

    def payment_details_req(self, emaid: str, chain: list[bytes]) -> Body:
        """PaymentDetailsReq: the eMAID and the contract certificate chain (leaf first, DER)."""
        certs: Body = {"Certificate": base64.b64encode(chain[0]).decode()}
        if len(chain) > 1:
            certs["SubCertificates"] = {"Certificate": [base64.b64encode(c).decode() for c in chain[1:]]}
        return {"eMAID": emaid, "ContractSignatureCertChain": certs}

    def read_payment_details_req(self, body: Body) -> tuple[str, list[bytes]]:
        """(eMAID, contract chain DER leaf first) of a PaymentDetailsReq."""
        chain = body["ContractSignatureCertChain"]
        subs = (chain.get("SubCertificates") or {}).get("Certificate", [])
        return body["eMAID"], [base64.b64decode(chain["Certificate"]), *(base64.b64decode(c) for c in subs)]

    def read_payment_details_res(self, body: Body) -> tuple[str, bytes]:
        """(ResponseCode, GenChallenge) of a PaymentDetailsRes."""
        return body["ResponseCode"], base64.b64decode(body.get("GenChallenge", ""))

    def read_authorization_req(self, body: Body) -> tuple[str | None, bytes | None]:
        """(Id, GenChallenge) of an AuthorizationReq (both None for EIM)."""
        challenge = body.get("GenChallenge")
        return body.get("Id"), base64.b64decode(challenge) if challenge else None

    def cpd_req(self, p: EVChargeParameters) -> Body:
        """ChargeParameterDiscoveryReq."""
        out: Body = {"RequestedEnergyTransferMode": p.mode}
        out.update(self._ev_parameters(p))
        return out

    def _ev_parameters(self, p: EVChargeParameters) -> Body:
        """{AC_EVChargeParameter: ...} or {DC_EVChargeParameter: ...}."""
        if is_dc(p.mode):
            dc: Body = {"DC_EVStatus": self.dc_ev_status(p.status or DCEVStatus()),
                        "EVMaximumCurrentLimit": pv(p.max_current or 0, "A"),
                        "EVMaximumVoltageLimit": pv(p.max_voltage or 0, "V")}
            if p.departure_time is not None:
                dc["DepartureTime"] = p.departure_time
            if p.max_power is not None:
                dc["EVMaximumPowerLimit"] = pv(p.max_power, "W")
            if p.energy_capacity is not None:
                dc["EVEnergyCapacity"] = pv(p.energy_capacity, "Wh")
            if p.energy_request is not None:
                dc["EVEnergyRequest"] = pv(p.energy_request, "Wh")
            if p.full_soc is not None:
                dc["FullSOC"] = p.full_soc
            if p.bulk_soc is not None:
                dc["BulkSOC"] = p.bulk_soc
            return {"DC_EVChargeParameter": dc}
        ac: Body = {"EAmount": pv(p.energy_amount or 0, "Wh"), "EVMaxVoltage": pv(p.max_voltage or 0, "V"),
                    "EVMaxCurrent": pv(p.max_current or 0, "A"), "EVMinCurrent": pv(p.min_current or 0, "A")}
        if p.departure_time is not None:
            ac["DepartureTime"] = p.departure_time
        return {"AC_EVChargeParameter": ac}

    def power_delivery_req(self, progress: str, tuple_id: int, profile: list[ProfileEntry] | None,
                           dc_status: DCEVStatus | None, complete: bool, bulk_complete: bool | None = None) -> Body:
        """PowerDeliveryReq (ChargeProgress Start, Stop or Renegotiate)."""
        out: Body = {"ChargeProgress": progress, "SAScheduleTupleID": tuple_id}
        if profile:
            out["ChargingProfile"] = self.charging_profile(tuple_id, profile)
        if dc_status is not None:
            out["DC_EVPowerDeliveryParameter"] = self._dc_power_delivery(dc_status, complete, bulk_complete)
        return out

    def _dc_power_delivery(self, st: DCEVStatus, complete: bool, bulk_complete: bool | None) -> Body:
        """DC_EVPowerDeliveryParameter content."""
        out: Body = {"DC_EVStatus": self.dc_ev_status(st), "ChargingComplete": complete}
        if bulk_complete is not None:
            out["BulkChargingComplete"] = bulk_complete
        return out

    def charging_status_req(self) -> Body:
        """ChargingStatusReq."""
        return {}

    def metering_receipt_req(self, session_id: str, tuple_id: int | None, meter: MeterReading,
                             ref_id: str | None = None) -> Body:
        """MeteringReceiptReq: unsigned for EIM; with Plug & Charge it carries the Id the EV's signature names."""
        out: Body = {"Id": ref_id} if ref_id else {}
        out.update({"SessionID": session_id, "MeterInfo": self.meter_info(meter)})
        if tuple_id is not None:
            out["SAScheduleTupleID"] = tuple_id
        return out

    def ev_status_req(self, st: DCEVStatus) -> Body:
        """CableCheckReq / WeldingDetectionReq."""
        return {"DC_EVStatus": self.dc_ev_status(st)}

    def precharge_req(self, st: DCEVStatus, voltage: float, current: float) -> Body:
        """PreChargeReq."""
        return {"DC_EVStatus": self.dc_ev_status(st), "EVTargetVoltage": pv(voltage, "V"),
                "EVTargetCurrent": pv(current, "A")}

    def current_demand_req(self, cd: CurrentDemand) -> Body:
        """CurrentDemandReq."""
        out: Body = {"DC_EVStatus": self.dc_ev_status(cd.status), "EVTargetCurrent": pv(cd.target_current, "A")}
        if cd.max_voltage is not None:
            out["EVMaximumVoltageLimit"] = pv(cd.max_voltage, "V")
        if cd.max_current is not None:
            out["EVMaximumCurrentLimit"] = pv(cd.max_current, "A")
        if cd.max_power is not None:
            out["EVMaximumPowerLimit"] = pv(cd.max_power, "W")
        if cd.bulk_complete is not None:
            out["BulkChargingComplete"] = cd.bulk_complete
        out["ChargingComplete"] = cd.complete
        if cd.remaining_time_full is not None:
            out["RemainingTimeToFullSoC"] = pv(cd.remaining_time_full, "s")
        if cd.remaining_time_bulk is not None:
            out["RemainingTimeToBulkSoC"] = pv(cd.remaining_time_bulk, "s")
        out["EVTargetVoltage"] = pv(cd.target_voltage, "V")
        return out

    def session_stop_req(self, kind: str) -> Body:
        """SessionStopReq (Terminate or Pause)."""
        return {"ChargingSession": kind}

    # ----- EVCC: reading responses -----

    def read_session_setup_res(self, body: Body) -> str:
        """EVSEID."""
        return str(body["EVSEID"])

    def read_service_discovery_res(self, body: Body) -> tuple[list[str], list[str], int, list[Service]]:
        """(payment options, energy transfer modes, charge ServiceID, value-added services)."""
        cs = body["ChargeService"]
        services = [Service(s["ServiceID"], s.get("ServiceName", ""), s["ServiceCategory"], s["FreeService"])
                    for s in (body.get("ServiceList") or {}).get("Service", [])]
        return (list(body["PaymentOptionList"]["PaymentOption"]),
                list(cs["SupportedEnergyTransferMode"]["EnergyTransferMode"]), int(cs["ServiceID"]), services)

    def read_cpd_res(self, body: Body) -> tuple[str, list[SASchedule], ACEVSEParameters | DCEVSEParameters | None,
                                                EVSEStatus]:
        """(EVSEProcessing, schedules, EVSE parameters, EVSE status)."""
        params: ACEVSEParameters | DCEVSEParameters | None = None
        status = EVSEStatus()
        ac = body.get("AC_EVSEChargeParameter")
        dc = body.get("DC_EVSEChargeParameter")
        if ac is not None:
            params = ACEVSEParameters(nominal_voltage=value(ac.get("EVSENominalVoltage") or ac.get("EVSEMaxVoltage"))
                                      or 230.0, max_current=value(ac["EVSEMaxCurrent"]) or 0.0,
                                      min_current=value(ac.get("EVSEMinCurrent")) or 0.0)
            status = self.read_evse_status(ac)
        elif dc is not None:
            params = DCEVSEParameters(
                max_current=value(dc["EVSEMaximumCurrentLimit"]) or 0.0,
                max_power=value(dc.get("EVSEMaximumPowerLimit")) or 0.0,
                max_voltage=value(dc["EVSEMaximumVoltageLimit"]) or 0.0,
                min_current=value(dc["EVSEMinimumCurrentLimit"]) or 0.0,
                min_voltage=value(dc["EVSEMinimumVoltageLimit"]) or 0.0,
                peak_current_ripple=value(dc["EVSEPeakCurrentRipple"]) or 0.0)
            status = self.read_evse_status(dc)
        return body["EVSEProcessing"], self.read_sa_schedule_list(body.get("SAScheduleList")), params, status

    def read_charging_status_res(self, body: Body) -> tuple[float | None, MeterReading | None, bool, EVSEStatus]:
        """(EVSEMaxCurrent, MeterInfo, ReceiptRequired, AC_EVSEStatus)."""
        return (value(body.get("EVSEMaxCurrent")), self.read_meter_info(body.get("MeterInfo")),
                bool(body.get("ReceiptRequired")), self.read_evse_status(body))

    def read_present_voltage(self, body: Body) -> float:
        """EVSEPresentVoltage of PreChargeRes / WeldingDetectionRes."""
        return value(body["EVSEPresentVoltage"]) or 0.0

    def read_current_demand_res(self, body: Body) -> tuple[DCOutput, MeterReading | None, bool]:
        """(present output and limits, MeterInfo, ReceiptRequired)."""
        out = DCOutput(
            voltage=value(body["EVSEPresentVoltage"]) or 0.0, current=value(body["EVSEPresentCurrent"]) or 0.0,
            current_limit_achieved=bool(body["EVSECurrentLimitAchieved"]),
            voltage_limit_achieved=bool(body["EVSEVoltageLimitAchieved"]),
            power_limit_achieved=bool(body["EVSEPowerLimitAchieved"]),
            max_voltage=value(body.get("EVSEMaximumVoltageLimit")),
            max_current=value(body.get("EVSEMaximumCurrentLimit")), max_power=value(body.get("EVSEMaximumPowerLimit")))
        return out, self.read_meter_info(body.get("MeterInfo")), bool(body.get("ReceiptRequired"))
