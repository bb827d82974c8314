"""Get15118EVCertificate for ISO 15118-20 EVs (iso15118SchemaVersion urn:iso:std:iso:15118:-20:CommonMessages): the
EV's -20 CertificateInstallationReq (EXI, base64) checked and answered with a contract of the -20 PKI's eMSP
(secp521r1 or Ed448, the contract key sealed for the EV), or a FAILED_* CertificateInstallationRes."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from .. import exi
from ..iso15118.messages.iso20 import failed_common
from ..iso15118.messages.iso20_types import RESPONSE_CODES20, message
from ..iso15118.pnc20 import Pnc20Error, answer_installation
from ..pki.contracts20 import ContractService20

log = logging.getLogger(__name__)

SCHEMA20 = "urn:iso:std:iso:15118:-20:CommonMessages"
"""The iso15118SchemaVersion of -20 requests (the namespace of the CommonMessages schema)."""


@dataclass(frozen=True)
class Answer20:
    """What the CSMS answers: the -20 ResponseCode ("OK" or FAILED_*), the new eMAID, the exiResponse (base64), and
    the SessionID of the EV's request."""

    code: str
    emaid: str | None
    exi_response: str
    session_id: str


def answer_get_certificate20(service: ContractService20 | None, exi_request: str) -> Answer20:
    """Check and answer a -20 CertificateInstallationReq (base64 EXI). ValueError for a request that is no -20
    document at all (the caller answers InvalidExi)."""
    doc: dict[str, Any] = exi.decode("iso20", base64.b64decode(exi_request, validate=True))
    content = doc.get("CertificateInstallationReq")
    if not isinstance(content, dict):
        raise ValueError(f"expected a CertificateInstallationReq, got {', '.join(doc) or 'nothing'}")
    session_id = str((content.get("Header") or {}).get("SessionID", "0" * 16))
    emaid: str | None = None
    if service is None:
        code, res = "FAILED_NoCertificateAvailable", None
    else:
        try:
            res, emaid = answer_installation(service, doc)
            code = "OK"
        except Pnc20Error as e:
            log.warning("-20 certificate installation refused: %s", e)
            code, res = e.code, None
        except (KeyError, TypeError, ValueError) as e:
            log.warning("-20 certificate installation: unusable request: %s", e)
            code, res = "FAILED", None
    if res is None:  # the refusal's -20 code where the schema has it (FAILED_SignatureError), else FAILED
        answered = code if code.startswith("FAILED") and code in RESPONSE_CODES20 else "FAILED"
        res = message("CertificateInstallationRes", session_id, failed_common("CertificateInstallationRes", answered))
    return Answer20(code, emaid, base64.b64encode(exi.encode("iso20", res)).decode(), session_id)
