"""The Plug & Charge steps of the DIN / ISO 15118-2 EVCC (a mixin of EvccSession): certificate installation and
update, PaymentDetails with the contract chain, and the AuthorizationReq signed with the contract key (and the
faults the tests inject there).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import pnc, xmldsig
from .evcc_config import Contract, EvccConfig
from .model import Step
from .timers import EvccTimers

if TYPE_CHECKING:  # the host's message set and results; imported for the types only
    from .evcc_config import Send, SessionResult
    from .messages import Iso2Messages

log = logging.getLogger(__name__)
Body = dict[str, Any]


class EvccPnc:
    """Plug & Charge requests and answers; the host (EvccSession) provides the state and the sending below."""

    config: EvccConfig
    msgs: Iso2Messages | None
    contract: Contract | None
    installed: Contract | None
    challenge: bytes | None
    rx_header: dict[str, Any]
    timers: EvccTimers

    if TYPE_CHECKING:  # provided by the host
        def _send(self, now: float, step: Step, body: Body, delay: float = 0.0,
                  signature: dict[str, Any] | None = None) -> Send | SessionResult: ...

        def _fail(self, reason: str, code: str | None = None) -> SessionResult: ...

        def _start_timer(self, name: str, seconds: float, now: float) -> None: ...

    def _contract_request(self, now: float) -> Send | SessionResult:
        """Payment by contract selected: CertificateUpdateReq (a contract to renew), CertificateInstallationReq (no
        contract yet: the OEM provisioning certificate) or PaymentDetailsReq with the contract chain."""
        assert self.msgs is not None
        if self.contract is not None and self.config.update_contract and self.installed is None:
            body, signature = pnc.update_request(self.contract.emaid, self.contract.chain, self.contract.key,
                                                 list(self.config.v2g_roots))
            return self._send(now, Step.CERTIFICATE_UPDATE, body, signature=signature)
        if self.contract is None:
            oem = self.config.oem
            if oem is None:
                return self._fail("Plug & Charge selected without a contract or an OEM provisioning certificate")
            body, signature = pnc.installation_request(oem.cert, oem.key, oem.v2g_roots)
            return self._send(now, Step.CERTIFICATE_INSTALLATION, body, signature=signature)
        emaid = self.contract.emaid
        if self.config.pnc_fault == "emaid-mismatch":
            emaid = emaid[:-1] + ("0" if emaid[-1] != "0" else "1")
        return self._send(now, Step.PAYMENT_DETAILS, self.msgs.payment_details_req(emaid, self.contract.chain))

    def _after_certificate_installation(self, body: Body, now: float) -> Send | SessionResult:
        """CertificateInstallationRes: check the CPS signature, decrypt the contract key, then PaymentDetails."""
        assert self.msgs is not None and self.config.oem is not None
        try:
            got = pnc.accept_installation(body, self.rx_header.get("Signature"), self.config.oem.key,
                                          self.config.oem.v2g_roots)
        except pnc.InstallationError as e:
            return self._fail(f"certificate installation refused: {e}", e.code)
        self.contract = self.installed = Contract(got.emaid, got.chain, got.key)
        log.info("EVCC: contract %s installed", got.emaid)
        return self._send(now, Step.PAYMENT_DETAILS, self.msgs.payment_details_req(got.emaid, got.chain))

    def _after_certificate_update(self, body: Body, now: float) -> Send | SessionResult:
        """CertificateUpdateRes: the new contract's key is encrypted for the current contract's key."""
        assert self.msgs is not None and self.contract is not None
        try:
            got = pnc.accept_installation(body, self.rx_header.get("Signature"), self.contract.key,
                                          list(self.config.v2g_roots))
        except pnc.InstallationError as e:
            return self._fail(f"certificate update refused: {e}", e.code)
        self.contract = self.installed = Contract(got.emaid, got.chain, got.key)
        log.info("EVCC: contract %s renewed", got.emaid)
        return self._send(now, Step.PAYMENT_DETAILS, self.msgs.payment_details_req(got.emaid, got.chain))

    def _after_payment_details(self, body: Body, now: float) -> Send | SessionResult:
        """PaymentDetailsRes: sign the GenChallenge in AuthorizationReq with the contract key."""
        assert self.msgs is not None
        _, self.challenge = self.msgs.read_payment_details_res(body)
        self._start_timer("V2G_EVCC_Ongoing_Timeout", self.timers.ongoing, now)
        return self._signed_authorization(now)

    def _signed_authorization(self, now: float, delay: float = 0.0) -> Send | SessionResult:
        """AuthorizationReq with Id and GenChallenge, signed (header Signature) with the contract key."""
        assert self.msgs is not None and self.contract is not None and self.challenge is not None
        challenge, key = self.challenge, self.contract.key
        if self.config.pnc_fault == "tampered-challenge":
            challenge = bytes(b ^ 0xFF for b in challenge)
        elif self.config.pnc_fault == "bad-signature":
            key = ec.generate_private_key(ec.SECP256R1())
        req = self.msgs.authorization_req(challenge)
        signature = xmldsig.sign(self.msgs.ns, [(req["Id"], "AuthorizationReq", req)], key)
        return self._send(now, Step.AUTHORIZATION, req, delay, signature)
