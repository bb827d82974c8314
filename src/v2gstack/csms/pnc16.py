"""Plug & Charge for OCPP 1.6 stations per the OCA application note "Using ISO 15118 Plug & Charge with OCPP 1.6":
DataTransfer under vendorId `org.openchargealliance.iso15118pnc`, messageId = the OCPP 2.0.1 action, `data` = the
2.0.1 payload as a JSON string, checked against the 2.0.1 schemas both ways and served by the same services as a 2.0.1
station's messages (contract validation with OCSP, contract issuing, OCSP for the station's own chain, V2G
certificate signing).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastjsonschema import JsonSchemaValueException

from ..ocpp import CallContext
from ..ocpp.errors import PayloadInvalid
from ..ocpp.schemas import default_store, schema_error
from ..ocpp.versions import Version
from ..pki.csr import CsrError
from .errors import CommandError

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)

Payload = dict[str, Any]

PNC_VENDOR = "org.openchargealliance.iso15118pnc"
# messageIds a station sends, and those the CSMS sends (application note, section 2)
STATION_MESSAGES = ("Authorize", "Get15118EVCertificate", "GetCertificateStatus", "SignCertificate")
CSMS_MESSAGES = ("CertificateSigned", "InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds",
                 "TriggerMessage")


class PncPayloadError(ValueError):
    """A wrapped payload that is no JSON object or does not fit its 2.0.1 schema; `reason_code` is the OCPP-J code
    (without "Constraint", to fit StatusInfo's 20 characters)."""

    def __init__(self, reason_code: str, description: str) -> None:
        super().__init__(description)
        self.reason_code = reason_code

    def data(self) -> str:
        """The `data` of the Rejected answer: a 2.0.1 StatusInfoType as a JSON string."""
        return json.dumps({"statusInfo": {"reasonCode": self.reason_code[:20], "additionalInfo": str(self)[:512]}})


def unwrap(action: str, data: Any, *, response: bool = False) -> Payload:
    """The 2.0.1 payload inside `data` (a JSON string), checked against the 2.0.1 request (or response) schema."""
    if not isinstance(data, str):
        raise PncPayloadError("FormatViolation", "data must be the 2.0.1 payload as a JSON string")
    try:
        payload = json.loads(data)
    except ValueError as e:
        raise PncPayloadError("FormatViolation", f"data is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise PncPayloadError("FormatViolation", "data must be a JSON object")
    check(action, payload, response=response)
    return payload


def check(action: str, payload: Payload, *, response: bool = False) -> None:
    """Raise PncPayloadError unless `payload` fits the 2.0.1 request (response) schema of `action`."""
    schemas = default_store()[Version.V201]
    validator = (schemas.responses if response else schemas.requests)[action]
    try:
        validator(payload)
    except JsonSchemaValueException as e:
        err = schema_error(e, Version.V201, f"{action} {'response' if response else 'request'}")
        # StatusInfo.reasonCode has 20 characters: OccurrenceConstraintViolation -> OccurrenceViolation
        raise PncPayloadError(err.code.value.replace("Constraint", ""), err.description) from None


def wrap(action: str, payload: Payload) -> Payload:
    """The DataTransfer request carrying a 2.0.1 `action` payload."""
    return {"vendorId": PNC_VENDOR, "messageId": action, "data": json.dumps(payload, separators=(",", ":"))}


class PncDataTransfer:
    """The application note's messages for one Csms, both directions."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    async def serve(self, p: Payload, ctx: CallContext) -> Payload:
        """Answer a station's PnC DataTransfer: Accepted with the 2.0.1 response in `data`, Rejected with a reason
        when the payload does not fit the 2.0.1 schema, UnknownMessageId for other messageIds."""
        action = p.get("messageId") or ""
        if action not in STATION_MESSAGES:
            return {"status": "UnknownMessageId"}
        try:
            request = unwrap(action, p.get("data"))
        except PncPayloadError as e:
            log.warning("station %s: PnC %s rejected: %s", ctx.station_id, action, e)
            return {"status": "Rejected", "data": e.data()}
        inner = CallContext(ctx.connection, ctx.message_id, action)
        csms = self.csms
        if action == "Authorize":
            answer = await csms.on_authorize(request, inner)
        elif action == "Get15118EVCertificate":
            answer = await csms.on_get_15118_certificate(request, inner)
        elif action == "GetCertificateStatus":
            answer = await csms.on_get_certificate_status(request, inner)
        else:
            answer = await self._sign(request, ctx.station_id)
        check(action, answer, response=True)  # our own answer: a failure here is a bug, answered InternalError
        return {"status": "Accepted", "data": json.dumps(answer, separators=(",", ":"))}

    async def _sign(self, request: Payload, station_id: str) -> Payload:
        """SignCertificate (V2G certificate unless the request says otherwise), then CertificateSigned wrapped."""
        csms = self.csms
        kind = request.get("certificateType", "V2GCertificate")
        try:
            chain = await csms.sign_csr(station_id, request["csr"], kind)
        except CsrError as e:
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": str(e)[:512]}}
        await csms._log(station_id, "rx", "DataTransfer:SignCertificate", request, {"status": "Accepted"})
        csms.send_after_answer(station_id, f"PnC CertificateSigned {kind}", lambda: self.call(
            station_id, "CertificateSigned", {"certificateChain": chain, "certificateType": kind}))
        return {"status": "Accepted"}

    async def call(self, station_id: str, action: str, payload: Payload) -> Payload:
        """Send a CSMS -> station message of the note (CertificateSigned, InstallCertificate, DeleteCertificate,
        GetInstalledCertificateIds, TriggerMessage) and return the station's 2.0.1 answer; CommandError otherwise."""
        if action not in CSMS_MESSAGES:
            raise CommandError(404, f"{action} is no CSMS message of the PnC application note "
                                    f"({', '.join(CSMS_MESSAGES)})")
        try:
            check(action, payload)
        except PncPayloadError as e:
            raise CommandError(422, f"invalid {action} request: {e}", {"code": e.reason_code}) from e
        answer = await self.csms.call(station_id, "DataTransfer", wrap(action, payload))
        if answer["status"] != "Accepted":
            raise CommandError(502, f"the station answered the PnC {action} with {answer['status']}",
                               {"status": answer["status"], "data": answer.get("data")})
        try:
            return unwrap(action, answer.get("data"), response=True)
        except (PncPayloadError, PayloadInvalid) as e:
            raise CommandError(502, f"the station's answer to the PnC {action} is invalid: {e}") from e
