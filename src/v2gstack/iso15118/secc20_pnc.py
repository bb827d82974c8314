"""The ISO 15118-20 SECC's Plug & Charge checks (Secc20's `Pnc20Hooks`), built on the -20 security pieces (pnc20):
the signature over PnC_AReqAuthorizationMode with the contract key, the GenChallenge of AuthorizationSetupRes, the
contract chain's form, algorithms (secp521r1 or Ed448) and validity, then the station's own check of the chain
(`EVSEController.contract_check`, e.g. against its MO roots or the CSMS); and the signed SignedMeteringData of
MeteringConfirmationReq. Each returns "OK" or the -20 code to answer (FAILED_SignatureError closes the session,
the WARNING_ codes refuse the authorization).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ..pki.algorithms import ISO20_ALGORITHMS, UnsupportedKeyError, algorithm_of
from ..trace.error_map import iso20_auth_code
from . import pnc20
from .messages.iso20_types import Body

if TYPE_CHECKING:  # the engine these checks serve; imported for the type only
    from .secc20 import Secc20

log = logging.getLogger(__name__)


def contract_precheck20(chain: list[x509.Certificate], at: dt.datetime | None = None) -> str:
    """What the SECC checks itself: -20 key algorithms in the whole chain, every certificate within its validity."""
    now = at or dt.datetime.now(dt.UTC)
    for cert in chain:
        try:
            if algorithm_of(cert.public_key()) not in ISO20_ALGORITHMS:
                return "WARNING_CertificateValidationError"
        except UnsupportedKeyError:
            return "WARNING_CertificateValidationError"
        if now < cert.not_valid_before_utc:
            return "WARNING_CertificateNotYetValid"
        if now > cert.not_valid_after_utc:
            return "WARNING_CertificateExpired"
    return "OK"


def emaid_of(leaf: x509.Certificate) -> str:
    """The eMAID of a -20 contract certificate: its CN."""
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


class Pnc20Checks:
    """The -20 Plug & Charge checks with the pnc20 pieces (the default of every SeccSession)."""

    def authorize(self, engine: Secc20, mode: Body, signature: Body | None) -> str:
        """AuthorizationReq(PnC): signature and challenge (pnc20), the chain's form and validity, then the
        controller's contract check; fills info.emaid and info.contract_chain."""
        if engine.challenge is None:
            return "WARNING_AuthorizationSelectionInvalid"
        try:
            chain = pnc20.check_pnc_authorization(mode, signature, engine.challenge)
        except pnc20.Pnc20Error as e:
            log.warning("%s: PnC_AReqAuthorizationMode: %s", engine.session.label, e)
            return e.code
        code = contract_precheck20(chain)
        emaid = emaid_of(chain[0])
        der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        info = engine.info
        info.payment_option, info.emaid, info.contract_chain = "Contract", emaid, der
        if code == "OK":
            checked = engine.controller.contract_check(info, emaid, der)
            code = "OK" if checked == "OK" else iso20_auth_code(checked, pnc=True)
        return code

    def check_metering(self, engine: Secc20, data: Body, signature: Body | None) -> str:
        """MeteringConfirmationReq: SignedMeteringData signed with the contract key."""
        chain = engine.info.contract_chain
        if not chain:
            return "FAILED_MeteringSignatureNotValid"
        try:
            pnc20.check_metering(data, signature, x509.load_der_x509_certificate(chain[0]))
        except pnc20.Pnc20Error as e:
            log.warning("%s: SignedMeteringData: %s", engine.session.label, e)
            return e.code
        return "OK"
