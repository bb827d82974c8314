"""The Plug & Charge steps of the DIN / ISO 15118-2 SECC (a mixin of SeccSession): PaymentDetails (the contract
chain's form, eMAID and validity, then the controller's check; a fresh GenChallenge), the signature and challenge of
the AuthorizationReq, and certificate installation and update handed to the controller.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from cryptography import x509

from . import xmldsig
from .evse import EVSEController, SessionInfo
from .model import Step
from .pnc import contract_precheck
from .secc_base import Reply

if TYPE_CHECKING:  # the host's message set; imported for the type only
    from .messages import Iso2Messages

log = logging.getLogger(__name__)
Body = dict[str, Any]


class SeccPnc:
    """Plug & Charge requests and answers; the host (SeccSession) provides the state below."""

    controller: EVSEController
    msgs: Iso2Messages | None
    info: SessionInfo | None
    challenge: bytes | None
    expected: frozenset[Step]
    _rx_header: dict[str, Any]
    label: str  # the host's property: the session label for log lines

    def _payment_details(self, body: Body) -> Body:
        """PaymentDetailsReq (Plug & Charge): check the contract chain's form, eMAID and validity; GenChallenge."""
        assert self.msgs is not None and self.info is not None
        emaid, chain = self.msgs.read_payment_details_req(body)
        code = contract_precheck(emaid, chain)
        if code == "OK":
            code = self.controller.contract_check(self.info, emaid, chain)
        if code != "OK":
            return self.msgs.payment_details_res(code, bytes(16), int(time.time()))
        self.info.emaid, self.info.contract_chain = emaid, chain
        self.challenge = secrets.token_bytes(16)
        self.expected = frozenset({Step.AUTHORIZATION})
        return self.msgs.payment_details_res("OK", self.challenge, int(time.time()))

    def _certificate_installation(self, doc: dict[str, Any], step: Step) -> Reply:
        """CertificateInstallationReq / CertificateUpdateReq: the controller (the station asks its CSMS) produces the
        whole signed response document, asynchronously (the default hook answers FAILED_NoCertificateAvailable)."""
        assert self.msgs is not None and self.info is not None
        if step is Step.CERTIFICATE_INSTALLATION:
            pending = self.controller.certificate_installation(self.info, doc)
        else:
            pending = self.controller.certificate_update(self.info, doc)
        return Reply(None, self.msgs.ns, self.msgs.res_name(step), False, step, pending=pending)

    def _check_signed_authorization(self, body: Body) -> str | None:
        """FAILED_SignatureError or FAILED_ChallengeInvalid for a Plug & Charge AuthorizationReq, None if it is good."""
        assert self.msgs is not None and self.info is not None and self.info.contract_chain
        ref_id, challenge = self.msgs.read_authorization_req(body)
        leaf = x509.load_der_x509_certificate(self.info.contract_chain[0])
        try:
            if ref_id is None:
                raise xmldsig.SignatureError("AuthorizationReq has no Id to sign")
            xmldsig.verify(self.msgs.ns, self._rx_header.get("Signature"), {ref_id: ("AuthorizationReq", body)},
                           leaf.public_key())  # type: ignore[arg-type]
        except xmldsig.SignatureError as e:
            log.warning("%s: AuthorizationReq signature: %s", self.label, e)
            return "FAILED_SignatureError"
        if challenge != self.challenge:
            log.warning("%s: AuthorizationReq GenChallenge is not the one sent", self.label)
            return "FAILED_ChallengeInvalid"
        return None
