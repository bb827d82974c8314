"""The bridge: an ISO 15118 / DIN 70121 SECC per EVSE whose sessions drive the OCPP 2.0.1 station, and back.

`EvseBridge` is the EVSEController factory of one EVSE's SeccServer. Its sessions turn ISO facts into OCPP
(SessionSetup -> plug-in and TransactionEvent customData with SessionID/EVCCID/protocol; ChargeParameterDiscovery ->
NotifyEVChargingNeeds; the EV's chosen schedule -> NotifyEVChargingSchedule; the charge loop -> the EVSE meter the
TransactionEvents report) and OCPP into ISO (authorization results, the composite charging schedule as the
SAScheduleList, a changed profile -> ReNegotiation, RequestStopTransaction -> StopCharging). It learns what happened
from the SECC's typed events (iso15118/events.py: each message, the EV's chosen schedule, how the session ended);
failures are reported by looking their kind up in trace/error_map.py. Each session writes one timeline
(trace/timeline.py) with both protocols.

The SECC calls controllers synchronously and must answer at once, so slow OCPP work runs in station tasks and the
controller answers Ongoing until it is done.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import ISO_FACTS_VENDOR, MIRROR_VENDOR, PROTOCOL_NAMES
from ..iso15118.events import MessageExchanged, ScheduleChosen, SessionEnded, SessionEvent, TlsFailed
from ..iso15118.evse import AuthorizationStatus, CableCheckResult, EVSEController, SessionInfo
from ..iso15118.model import (
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    DCOutput,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    PMaxEntry,
    ProfileEntry,
    SASchedule,
    Service,
    is_dc,
)
from ..iso15118.msglog import MessageRecord
from ..times import rfc3339
from ..trace.error_map import FAILURES, FailureKind, IsoFailure, notify_event
from ..trace.timeline import Timeline, TimelineFolder
from .device_model import VENDOR_COMPONENT
from .ports import CallFailed, EvseFacts, Offline, StationPort
from .profiles import Rejection

if TYPE_CHECKING:
    from ..iso15118.secc import SeccTimers
    from ..iso15118.secc_server import SeccServer
    from .station import ChargingStation

log = logging.getLogger(__name__)

PMAX_ENTRIES = 1024
"""The most PMaxScheduleEntry elements an ISO 15118-2 PMaxSchedule holds (its XSD's maxOccurs)."""


@dataclass
class BridgeConfig:
    """What the EVSEs of a bridged station offer the EV, and how EIM authorization happens (their power figures are
    the hardware's: StationConfig.hardware)."""

    evse_ids: dict[int, str] = field(default_factory=dict)  # EVSE -> ISO EVSEID; default DE*V2G*E<station>*<n>
    din_evse_id: str = "00"
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    id_token: dict[str, str] | None = None  # a token presented at the EVSE (RFID); None: wait for the CSMS
    schedule_duration: int = 86400


class EvseBridge:
    """Joins one EVSE's SECC to the station; `controller` is the SeccServer's controller factory."""

    def __init__(self, station: StationPort, evse_id: int, config: BridgeConfig | None = None,
                 timelines: TimelineFolder | None = None) -> None:
        self.station = station
        self.hardware = station.hardware(evse_id)  # the EVSE's power stage and meter (the one OCPP reports)
        self.evse_id = evse_id
        self.config = config or BridgeConfig()
        self.timelines = timelines or TimelineFolder(None)
        self.active: BridgeSession | None = None
        self.ending: set[BridgeSession] = set()  # ended ISO sessions whose OCPP transaction is still being closed
        self.finished: list[BridgeSession] = []
        self.server: SeccServer | None = None
        self.event_ids = itertools.count(int(time.time()) % 1_000_000)  # NotifyEvent eventIds of this EVSE
        station.on_profiles_changed(self._profiles_changed)
        station.on_frame(self._ocpp_frame)

    def controller(self) -> BridgeSession:
        """A controller for one new SECC connection."""
        return BridgeSession(self)

    def iso_message(self, session: BridgeSession, record: MessageRecord) -> None:
        """A message of `session`'s connection: it goes to the session's timeline (and to the CSMS if mirrored)."""
        session.timeline.iso(record.direction, record.namespace, record.name, record.doc, record.exi,
                             record.session_id)
        if self.station.settings.bool(VENDOR_COMPONENT, "MirrorISO15118Messages"):
            gz = self.station.settings.value(VENDOR_COMPONENT, "MirrorISO15118Compression") == "Gzip"
            data = gzip.compress(record.exi, mtime=0) if gz else record.exi
            self.station.notify("DataTransfer", {
                "vendorId": MIRROR_VENDOR.get(record.namespace, "ISO15118-20"), "messageId": record.name[:50],
                "data": "EXI::" + base64.b64encode(data).decode()})

    def tls_failed(self, event: TlsFailed) -> None:
        """The SECC's observer: a TLS handshake failed (no ISO session): reported per the error map, with a timeline
        of its own."""
        failure = FAILURES[event.kind]
        timeline = self.timelines.new()
        timeline.link(evseId=self.evse_id, stationId=self.station.station_id)
        timeline.error(failure.kind, code=None, reason=event.detail, peer=event.peer,
                       securityEvent=failure.security_event)
        report_failure(self.station, failure, None, event.detail, self.evse_id, next(self.event_ids))
        timeline.close()

    def _profiles_changed(self, evse_id: int) -> None:
        if self.active is not None and evse_id in (0, self.evse_id):
            self.active.profiles_changed()

    def _ocpp_frame(self, direction: str, text: str) -> None:
        for session in (self.active, *self.ending):
            if session is not None:
                session.ocpp_frame(direction, text)


class BridgeSession(EVSEController):
    """The EVSEController of one SECC session on a bridged EVSE."""

    def __init__(self, bridge: EvseBridge) -> None:
        self.bridge = bridge
        self.station = bridge.station
        self.config = bridge.config
        self.evse_no = bridge.evse_id
        self.hw = bridge.hardware
        self.timeline: Timeline = bridge.timelines.new()
        self.info: SessionInfo | None = None
        self.auth_task: asyncio.Task[Any] | None = None
        self.auth_result: str | None = None
        self.needs_sent = False
        self.renegotiate = False
        self.contactors = False
        self.tx_id: str | None = None
        self.stopped_remotely = False
        self.ev: EVChargeParameters | None = None
        self.ev_max_current: float | None = None
        self.power_w = 0.0
        self.offered: dict[int, SASchedule] = {}  # the SAScheduleTuples of the last ChargeParameterDiscoveryRes
        self._mids: dict[str, str] = {}  # message id -> action of the CALLs recorded (to name their answers)
        bridge.active = self  # the EVSE has one EV at a time: profile changes and OCPP frames are this session's now

    @property
    def evse(self) -> EvseFacts:
        """What the station knows of this EVSE now."""
        return self.station.evse(self.evse_no)

    # ----- the OCPP side of the timeline -----

    def ocpp_frame(self, direction: str, text: str) -> None:
        """Record the OCPP frames that concern this EVSE or its transaction (and the answers to them)."""
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if not isinstance(frame, list) or len(frame) < 3:
            return
        if frame[0] == 2 and len(frame) >= 4:
            if self._concerns(frame[2], frame[3]):
                self._mids[frame[1]] = frame[2]
                self.timeline.ocpp(direction, frame)
        elif frame[1] in self._mids:
            action = self._mids.pop(frame[1])
            self.timeline.ocpp(direction, frame, action=f"{action}{'Response' if frame[0] == 3 else ' CALLERROR'}")

    def _concerns(self, action: str, p: dict[str, Any]) -> bool:
        tx = (p.get("transactionInfo") or {}).get("transactionId") or p.get("transactionId") or (
            p.get("chargingProfile") or {}).get("transactionId")
        if tx is not None:
            return tx in (self.tx_id, self.evse.transaction_id)
        evse = p.get("evseId", (p.get("evse") or {}).get("id"))
        if evse is not None:
            return evse == self.evse_no
        return action in ("Authorize",) and self.auth_task is not None and not self.auth_task.done()

    def _link_tx(self) -> None:
        tx_id = self.evse.transaction_id
        if tx_id is not None and tx_id != self.tx_id:
            self.tx_id = tx_id
            self.timeline.link(transactionId=tx_id)

    def on_event(self, event: SessionEvent) -> None:
        """The SECC's events: each message goes to the timeline (and the mirror); the EV's chosen schedule (once
        PowerDeliveryReq Start is answered OK) becomes NotifyEVChargingSchedule. The end comes to session_ended."""
        if isinstance(event, MessageExchanged):
            self.bridge.iso_message(self, event.record)
        elif isinstance(event, ScheduleChosen):
            self.timeline.state("ScheduleChosen", saScheduleTupleId=event.tuple_id,
                                profile=[(e.start, e.max_power) for e in event.profile])
            self.station.notify("NotifyEVChargingSchedule", self._ev_schedule(event.tuple_id, list(event.profile)))

    # ----- identity and offer -----

    def evse_id(self, protocol: str) -> str:
        """EVSEID: DIN is hexBinary, -2 the ISO form (country*operator*E id*n)."""
        if protocol == "din":
            return self.config.din_evse_id
        return self.config.evse_ids.get(self.evse_no) or (
            f"DE*V2G*E{self.station.station_id.replace('-', '').replace('_', '')[:20]}*{self.evse_no}")

    def payment_options(self) -> list[str]:
        """EIM (ExternalPayment), and Plug & Charge (Contract) when ISO15118Ctrlr.PnCEnabled (the SECC offers it
        only over TLS)."""
        if self.station.settings.bool("ISO15118Ctrlr", "PnCEnabled"):
            return ["Contract", "ExternalPayment"]
        return ["ExternalPayment"]

    def energy_modes(self) -> list[str]:
        """The EVSE's energy transfer modes."""
        return list(self.config.energy_modes)

    def services(self) -> list[Service]:
        """No value-added services."""
        return []

    def session_started(self, info: SessionInfo) -> None:
        """SessionSetup: the EV is there (plug-in), the ISO facts go to the timeline and the transaction."""
        self.info = info
        self.timeline.link(sessionId=info.session_id, evccId=info.evcc_id, evseId=self.evse_no,
                           isoProtocol=PROTOCOL_NAMES.get(info.protocol, info.protocol),
                           stationId=self.station.station_id)
        self.timeline.state("SessionStarted", resumed=info.resumed, tls=info.tls, peer=info.peer)
        self.station.spawn(self._plugged(), f"plug-{self.evse_no}")

    async def _plugged(self) -> None:
        await self.station.plug_in(self.evse_no)
        self._facts()

    def _facts(self) -> None:
        """The ISO facts the CSMS joins to the transaction (TransactionEvent customData)."""
        if self.info is None or self.station.evse(self.evse_no).transaction_id is None:
            return
        self._link_tx()
        facts: dict[str, Any] = {"vendorId": ISO_FACTS_VENDOR, "sessionId": self.info.session_id,
                                 "evccId": self.info.evcc_id,
                                 "protocol": PROTOCOL_NAMES.get(self.info.protocol, self.info.protocol),
                                 "traceId": self.timeline.trace_id}
        if self.info.energy_mode:
            facts["energyTransferMode"] = self.info.energy_mode
        self.station.set_transaction_data(self.evse_no, facts)

    # ----- authorization (EIM) -----

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """Ongoing while the station authorizes: free vend, a token presented here, or the CSMS's remote start."""
        self._facts()
        if self.evse.authorized:
            return self._authorized()
        if self.auth_result is not None:
            if self.auth_result != "Accepted":
                info.auth_code = info.auth_code or "FAILED"
                return AuthorizationStatus.REJECTED
            return self._authorized()
        if self.auth_task is None:
            if info.payment_option == "Contract" and info.emaid and info.contract_chain:
                self.timeline.state("Authorizing", method="PlugAndCharge", eMAID=info.emaid)
                self.auth_task = self.station.spawn(self._authorize_contract(info), "iso-authorize")
            elif not self.station.settings.bool("AuthCtrlr", "Enabled"):
                self.timeline.state("Authorizing", method="FreeVend")
                self.auth_task = self.station.spawn(self._authorize({"idToken": "", "type": "NoAuthorization"},
                                                                    check=False), "iso-authorize")
            elif self.config.id_token is not None:
                self.timeline.state("Authorizing", method="IdToken", idToken=self.config.id_token["idToken"])
                self.auth_task = self.station.spawn(self._authorize(self.config.id_token), "iso-authorize")
            else:
                self.timeline.state("Authorizing", method="WaitingForRemoteStart")
                self.auth_task = self.station.spawn(asyncio.sleep(0), "iso-authorize")
        return AuthorizationStatus.ONGOING

    async def _authorize(self, token: dict[str, str], check: bool = True) -> None:
        info = await self.station.authorize(self.evse_no, token, check=check)
        self.auth_result = info.get("status", "Invalid")
        self.timeline.state("Authorized" if self.auth_result == "Accepted" else "AuthorizationRefused",
                            status=self.auth_result)

    async def _authorize_contract(self, info: SessionInfo) -> None:
        """Plug & Charge: Authorize with the eMAID, the contract chain (PEM) and its OCSP request data; the CSMS's
        certificateStatus decides the ISO ResponseCode (trace/error_map.py)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from ..pki.ocsp_data import chain_hash_data
        from ..trace.error_map import CERTIFICATE_TO_ISO

        assert info.emaid is not None and info.contract_chain is not None
        certs = [x509.load_der_x509_certificate(c) for c in info.contract_chain]
        token = {"idToken": info.emaid, "type": "eMAID"}
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs).decode()
        request: dict[str, Any] = {"idToken": token}
        if len(pem) <= 5500:  # AuthorizeRequest.certificate maxLength; longer chains go as hash data only
            request["certificate"] = pem
        hash_data = chain_hash_data(certs)
        if hash_data:
            request["iso15118CertificateHashData"] = hash_data
        model = self.station.settings
        local = self._local_contract_check(certs)  # None: no installed MO root to check against
        if local is not None and local != "OK":
            self.auth_result, info.auth_code = "Invalid", local
            self.timeline.state("AuthorizationRefused", by="station", isoCode=local)
            return
        if not self.station.online:
            if local == "OK" and model.bool("ISO15118Ctrlr", "ContractValidationOffline"):
                result = await self.station.authorize(self.evse_no, token, check=False)
                self.auth_result = result.get("status", "Invalid")
                self.timeline.state("Authorized", status=self.auth_result, method="PlugAndChargeOffline")
                return
            self.auth_result, info.auth_code = "Offline", "FAILED"
            self.timeline.error("AuthorizationUnavailable", reason="the CSMS could not be asked (offline)")
            return
        if local is None and not model.bool("ISO15118Ctrlr", "CentralContractValidationAllowed"):
            self.auth_result, info.auth_code = "Invalid", "FAILED_CertChainError"
            self.timeline.state("AuthorizationRefused", by="station", reason="no MO root installed and central "
                                "contract validation not allowed", isoCode=info.auth_code)
            return
        if local == "OK" and not model.bool("ISO15118Ctrlr", "CentralContractValidationAllowed"):
            request.pop("certificate", None)  # validated here; the CSMS gets the OCSP request data only
        try:
            answer = await self.station.call("Authorize", request)
        except Offline as e:
            self.auth_result, info.auth_code = "Offline", "FAILED"
            self.timeline.error("AuthorizationUnavailable", reason=f"the CSMS could not be asked (offline: "
                                f"{e.description})")
            return
        except CallFailed as e:  # refused, our own bug (logged as such), or an unusable answer
            self.auth_result, info.auth_code = "Invalid", "FAILED"
            self.timeline.error("AuthorizationUnavailable", reason=f"no usable answer from the CSMS "
                                f"({type(e).__name__}: {e.description})")
            return
        status = answer["idTokenInfo"]["status"]
        cert_status = answer.get("certificateStatus", "Accepted")
        if cert_status != "Accepted" or status != "Accepted":
            self.auth_result = status if status != "Accepted" else cert_status
            info.auth_code = CERTIFICATE_TO_ISO.get(cert_status, "FAILED") if cert_status != "Accepted" else "FAILED"
            self.timeline.state("AuthorizationRefused", status=status, certificateStatus=cert_status,
                                isoCode=info.auth_code)
            return
        result = await self.station.authorize(self.evse_no, token, check=False)
        self.auth_result = result.get("status", "Invalid")
        self.timeline.state("Authorized", status=self.auth_result, method="PlugAndCharge")

    async def certificate_update(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """CertificateUpdateReq: Get15118EVCertificate with action Update (as for installation)."""
        return await self.certificate_installation(info, request, action="Update")

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any],
                                       action: str = "Install") -> dict[str, Any] | str:
        """CertificateInstallationReq: forwarded to the CSMS as Get15118EVCertificate (the EXI request as sent by the
        EV, base64); its exiResponse, decoded, goes back to the EV; a refusal maps to a FAILED_* code."""
        from .. import exi

        res_name = "CertificateInstallationRes" if action == "Install" else "CertificateUpdateRes"
        self.timeline.state("CertificateInstallation" if action == "Install" else "CertificateUpdate",
                            via="Get15118EVCertificate")
        payload = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": action,
                   "exiRequest": base64.b64encode(exi.encode("iso2", request)).decode()}
        try:
            answer = await self.station.call("Get15118EVCertificate", payload)
        except CallFailed as e:
            self.timeline.error("CertificateInstallationFailed",
                                reason=f"the CSMS could not be asked ({type(e).__name__}: {e.description})")
            return "FAILED_NoCertificateAvailable"
        try:
            doc = exi.decode("iso2", base64.b64decode(answer["exiResponse"]))
            body = doc["V2G_Message"]["Body"][res_name]
        except Exception as e:  # an unusable answer from the CSMS
            self.timeline.error("CertificateInstallationFailed", reason=f"unusable exiResponse: {e}")
            return "FAILED"
        if answer["status"] != "Accepted" and not str(body.get("ResponseCode", "")).startswith("FAILED"):
            return "FAILED"
        self.timeline.state("CertificateInstalled" if answer["status"] == "Accepted" else "CertificateRefused",
                            code=body.get("ResponseCode"), eMAID=(body.get("eMAID") or {}).get("value"))
        return doc

    def _local_contract_check(self, certs: list[Any]) -> str | None:
        """The ISO code of checking the contract chain against the MO roots installed in the station (InstallCertificate
        MORootCertificate); None when none is installed."""
        from ..pki import errors as pki_errors
        from ..pki.verify import Purpose, verify_chain

        roots = self.station.installed_roots("MORootCertificate")
        if not roots:
            return None
        try:
            verify_chain(certs[0], certs[1:], roots, purpose=Purpose.CONTRACT)
        except pki_errors.PkiError as e:
            return e.iso_code
        return "OK"

    def _authorized(self) -> AuthorizationStatus:
        self._link_tx()
        token = self.evse.id_token
        if token is not None:
            self.timeline.link(idToken=token.get("idToken") or None)
        return AuthorizationStatus.ACCEPTED

    # ----- charge parameters and schedules -----

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """NotifyEVChargingNeeds (once), then the composite schedule as one SAScheduleTuple."""
        self.ev = ev
        self.ev_max_current = ev.max_current
        self.renegotiate = False
        self._facts()
        soc = ev.status.soc if ev.status is not None else None
        battery = ev.energy_capacity
        self.station.set_ev(self.evse_no, soc=float(soc) if soc is not None else None, battery_wh=battery)
        if not self.needs_sent:
            self.needs_sent = True
            self.station.notify("NotifyEVChargingNeeds", self._charging_needs(ev))
        composite = self._composite()
        entries = tuple(PMaxEntry(int(p["startPeriod"]), float(p["limit"])) for p in
                        composite["chargingSchedulePeriod"])
        last = entries[-1]
        entries = (*entries[:-1], PMaxEntry(last.start, last.pmax, self.config.schedule_duration - last.start))
        self.timeline.state("ScheduleOffered", pmax=[(e.start, e.pmax) for e in entries])
        offer = [SASchedule(1, entries)]
        self.offered = {t.tuple_id: t for t in offer}
        return offer

    def _composite(self) -> dict[str, Any]:
        """The EVSE's composite schedule for the SAScheduleTuple: at most PMAX_ENTRIES periods; should the profiles
        need more, the limit in force now, for the whole schedule."""
        try:
            return self.station.composite_schedule(self.evse_no, self.config.schedule_duration, "W",
                                                   max_periods=PMAX_ENTRIES)
        except Rejection as e:
            log.warning("EVSE %d: %s; offering the limit in force now", self.evse_no, e.info)
            limit = self.station.limit_w(self.evse_no)
            return {"chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(
                self.evse.max_power_w if limit is None else max(0.0, limit), 1)}]}

    def _charging_needs(self, ev: EVChargeParameters) -> dict[str, Any]:
        """NotifyEVChargingNeedsRequest from ChargeParameterDiscoveryReq (SI units, W/A/V/Wh)."""
        needs: dict[str, Any] = {"requestedEnergyTransfer": _energy_transfer(ev.mode)}
        if ev.departure_time is not None:
            departure = self.station.clock.wall().timestamp() + ev.departure_time
            needs["departureTime"] = rfc3339(departure, timespec="seconds")
        if is_dc(ev.mode):
            dc: dict[str, Any] = {"evMaxCurrent": int(ev.max_current or 0), "evMaxVoltage": int(ev.max_voltage or 0)}
            for key, value in (("energyAmount", ev.energy_request), ("evMaxPower", ev.max_power),
                               ("evEnergyCapacity", ev.energy_capacity), ("fullSoC", ev.full_soc),
                               ("bulkSoC", ev.bulk_soc)):
                if value is not None:
                    dc[key] = int(value)
            if ev.status is not None:
                dc["stateOfCharge"] = int(ev.status.soc)
            needs["dcChargingParameters"] = dc
        else:
            needs["acChargingParameters"] = {"energyAmount": int(ev.energy_amount or 0),
                                             "evMinCurrent": int(ev.min_current or 0),
                                             "evMaxCurrent": int(ev.max_current or 0),
                                             "evMaxVoltage": int(ev.max_voltage or 0)}
        return {"evseId": self.evse_no, "chargingNeeds": needs}

    def ac_parameters(self) -> ACEVSEParameters:
        """AC limits (the maximum current within the charging profiles)."""
        lim = self.hw.limits
        return ACEVSEParameters(lim.nominal_voltage, self._ac_limit(), lim.ac_min_current, lim.nominal_voltage)

    def dc_parameters(self) -> DCEVSEParameters:
        """DC limits (the maximum power within the charging profiles)."""
        lim = self.hw.limits
        return DCEVSEParameters(lim.dc_max_current, self._dc_power_limit(), lim.dc_max_voltage, lim.dc_min_current,
                                lim.dc_min_voltage, lim.dc_peak_current_ripple, current_regulation_tolerance=5.0)

    def _phases(self) -> int:
        return 1 if self.ev is not None and self.ev.mode == "AC_single_phase_core" else 3

    def _ac_limit(self) -> float:
        limit = self.station.limit_w(self.evse_no)
        amps = self.hw.limits.ac_max_current
        if limit is not None:
            amps = min(amps, limit / (self.hw.limits.nominal_voltage * self._phases()))
        return round(max(0.0, amps), 1)

    def _dc_power_limit(self) -> float:
        limit = self.station.limit_w(self.evse_no)
        power = min(self.hw.limits.dc_max_power, self.evse.max_power_w)
        return max(0.0, power if limit is None else min(power, limit))

    # ----- status: what the station wants the EV to do -----

    def status(self) -> EVSEStatus:
        """StopCharging when the transaction was stopped (CSMS or local), ReNegotiation after a profile change."""
        notification = "None"
        evse = self.evse
        if self.contactors and (evse.transaction_id is None or not evse.authorized):
            if not self.stopped_remotely:
                self.stopped_remotely = True
                self.timeline.state("StopRequested", by="CSMS or station")
            notification = "StopCharging"
        elif self.renegotiate and self.contactors and self.info is not None and self.info.protocol == "iso2":
            notification = "ReNegotiation"
        return EVSEStatus(notification=notification, isolation="Valid" if self.ev and is_dc(self.ev.mode) else None)

    def profiles_changed(self) -> None:
        """The CSMS changed a profile: -2 EVs renegotiate; every EV gets the new limit in the charge loop."""
        self.timeline.state("ProfilesChanged", limit_w=self.station.limit_w(self.evse_no))
        if self.contactors:
            self.renegotiate = True

    # ----- DC power stage -----

    def cable_check(self) -> CableCheckResult:
        """The hardware's isolation test."""
        result = self.hw.isolation_test()
        if result.fault:
            self.timeline.state("IsolationFault", isolation=result.level)
        return CableCheckResult(result.done, result.level)

    def precharge(self, voltage: float, current: float) -> float:
        """The hardware drives the output toward the EV's target voltage."""
        return self.hw.precharge(voltage, current)

    def set_contactors(self, closed: bool) -> bool:
        """Energy transfer starts or stops (False: the contactors failed)."""
        if not self.hw.set_contactors(closed):
            self.timeline.state("ContactorFault")
            return False
        self.contactors = closed
        self.timeline.state("ContactorsClosed" if closed else "ContactorsOpen")
        if not closed:
            self._draw(0.0)
        return True

    def _ev_schedule(self, tuple_id: int | None, profile: list[ProfileEntry]) -> dict[str, Any]:
        """NotifyEVChargingScheduleRequest: the EV's ChargingProfile (-2), or the SAScheduleTuple it chose when it
        sent none (DIN), from now on."""
        periods: list[dict[str, Any]]
        if profile:
            periods = [{"startPeriod": e.start, "limit": float(e.max_power),
                        **({"numberPhases": int(e.max_phases)} if e.max_phases else {})} for e in profile]
        else:
            chosen = self.offered.get(tuple_id or 1) or next(iter(self.offered.values()), None)
            if chosen is not None:
                periods = [{"startPeriod": e.start, "limit": float(e.pmax)} for e in chosen.entries]
            else:
                periods = [{"startPeriod": p["startPeriod"], "limit": p["limit"]}
                           for p in self._composite()["chargingSchedulePeriod"]]
        return {"timeBase": self.station.clock.timestamp(), "evseId": self.evse_no, "chargingSchedule": {
            "id": tuple_id or 1, "chargingRateUnit": "W", "duration": self.config.schedule_duration,
            "chargingSchedulePeriod": periods}}

    def _draw(self, power_w: float, soc: float | None = None) -> None:
        """Tell the station what the EV takes now (it draws through the hardware, whose meter both protocols
        report) and its SoC."""
        if power_w != self.power_w or soc is not None:
            self.power_w = power_w
            self.station.ev_update(self.evse_no, demand_w=power_w, soc=soc)

    def ac_max_current(self) -> float | None:
        """AC charge loop: the EV draws up to the limit current on its phases."""
        lim = self.hw.limits
        limit = self._ac_limit()
        amps = min(limit, self.ev_max_current or lim.ac_max_current)
        if not (self.contactors and self.evse.transaction_id is not None and amps >= lim.ac_min_current):
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
        """The EVSE meter's import register: the same value OCPP reports."""
        reading = self.hw.meter()
        return MeterReading(reading.meter_id[:32], int(reading.import_wh), int(self.station.clock.wall().timestamp()))

    def receipt_required(self) -> bool:
        """EIM: no metering receipt."""
        return False

    # ----- the end -----

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """Report the end in OCPP terms (the error map's row of its kind), end the transaction, and let the EVSE go.
        Before SessionSetup there is no transaction: only the reports."""
        failure, code, reason = FAILURES[ended.kind], ended.iso_code, ended.detail
        if self.bridge.active is self:
            self.bridge.active = None
        if info is None:
            self.timeline.error(failure.kind, code=code, reason=reason, securityEvent=failure.security_event)
            report_failure(self.station, failure, code, reason, self.evse_no, next(self.bridge.event_ids))
            self.timeline.close()
            return
        self._draw(0.0)
        self.timeline.state("SessionStopped", reason=reason, failure=failure.kind, code=code, paused=ended.paused)
        self.bridge.ending.add(self)
        self.bridge.finished.append(self)
        if len(self.bridge.finished) > 100:
            self.bridge.finished.pop(0)
        if ended.paused:
            return
        if failure.notify:
            self.timeline.error(failure.kind, code=code, reason=reason, stoppedReason=failure.stopped_reason,
                                securityEvent=failure.security_event, faulted=failure.faulted)
        self.station.spawn(self._report_end(failure, code, reason), f"iso-end-{self.evse_no}")

    async def _report_end(self, failure: IsoFailure, code: str | None, reason: str) -> None:
        st = self.station
        report_failure(st, failure, code, reason, self.evse_no, next(self.bridge.event_ids),
                       self.evse.transaction_id)
        if failure.kind is FailureKind.NORMAL:
            await st.unplug(self.evse_no)
        else:
            await st.stop_transaction(self.evse_no, failure.stopped_reason, failure.trigger_reason)
            if failure.faulted:
                await st.set_fault(self.evse_no, True, failure.stopped_reason)
            await st.unplug(self.evse_no)
        self.timeline.state("TransactionEnded", transactionId=self.tx_id)
        try:  # keep recording until the CSMS has the end of the transaction
            async with asyncio.timeout(60 * st.clock.scale + 30):
                await st.wait_queue_empty()
        except TimeoutError:
            pass
        finally:
            self.bridge.ending.discard(self)
            self.timeline.close()


def report_failure(station: StationPort, failure: IsoFailure, code: str | None, reason: str, evse_id: int,
                   event_id: int, transaction_id: str | None = None) -> None:
    """The OCPP messages of an ISO failure (trace/error_map.py): NotifyEvent and SecurityEventNotification."""
    now = station.clock.timestamp()
    if failure.notify:
        station.notify("NotifyEvent", {"generatedAt": now, "seqNo": 0, "eventData": [
            notify_event(failure, code, reason, evse_id, event_id, now, transaction_id)]})
    if failure.security_event:
        station.notify("SecurityEventNotification", {"type": failure.security_event, "timestamp": now,
                                                         "techInfo": f"EVSE {evse_id}: {reason}"[:255]})


def _energy_transfer(mode: str) -> str:
    """ISO EnergyTransferMode -> OCPP EnergyTransferModeEnumType."""
    return {"AC_single_phase_core": "AC_single_phase", "AC_three_phase_core": "AC_three_phase"}.get(mode, "DC")


async def start_bridged_seccs(station: ChargingStation, *, host: str = "::1", port: int | None = None,
                              ifaces: list[str] | None = None, sdp_port: int | None = None,
                              config: BridgeConfig | None = None, trace_dir: Path | None = None,
                              tls: Any = None, protocols: tuple[str, ...] = ("iso2", "din"),
                              timeout_scale: float = 1.0, tcp: bool = True,
                              timers: SeccTimers | None = None,
                              configs: dict[int, BridgeConfig] | None = None) -> list[EvseBridge]:
    """One SECC per EVSE: on `ifaces` (one per EVSE, SDP by multicast) or on loopback `host` with TCP ports
    `port`, `port`+1, ... (0 or None: free ports) and SDP ports `sdp_port`, `sdp_port`+1, ... (0: free ports).
    With `tls` the SECCs serve TLS as well, on ports `port`+N, `port`+N+1, ... for N EVSEs (or free ones), and
    report failed TLS handshakes; SDP then answers each EV with the transport it asks for (DIN 70121 has no TLS;
    Contract payment is offered over TLS only). `tcp=False` with `tls` serves TLS only.
    `timers` replaces the SECC timers (else the defaults with the sequence timeout x `timeout_scale`). `configs`
    gives EVSEs their own BridgeConfig (the others get `config`).
    Returns the bridges; `bridge.server` is the running SeccServer."""
    from ..iso15118.sdp import SDP_PORT
    from ..iso15118.secc import SeccConfig, SeccTimers
    from ..iso15118.secc_server import SeccServer

    if not tcp and tls is None:
        raise ValueError("serve TCP, TLS or both")
    bridges = []
    folder = TimelineFolder(trace_dir)
    base_sdp = SDP_PORT if sdp_port is None else sdp_port
    if timers is None:
        base = SeccTimers()
        timers = SeccTimers(sequence=base.sequence * timeout_scale, performance=base.performance,
                            performance_long=base.performance_long,
                            performance_current_demand=base.performance_current_demand)
    count = len(station.evses)
    for n, evse_id in enumerate(sorted(station.evses)):
        bridge = EvseBridge(station, evse_id, (configs or {}).get(evse_id, config), folder)
        iface = ifaces[n] if ifaces and n < len(ifaces) else None
        tcp_port = (port + n) if port and tcp else 0
        tls_port = (port + (count if tcp else 0) + n) if port and tls is not None else 0
        server = SeccServer(bridge.controller, SeccConfig(protocols=protocols, timers=timers), host=host,
                            port=tcp_port, iface=iface, tls=tls, tcp=tcp, tls_port=tls_port,
                            sdp_port=base_sdp if iface or not base_sdp else base_sdp + n,
                            observer=bridge if tls is not None else None)
        await server.start()
        bridge.server = server
        bridges.append(bridge)
    return bridges
