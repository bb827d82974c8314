"""The reference stack's (`iso15118` 0.31.2) ISO 15118-20 signing and verification, run under .venv-ref/bin/python.

Used by tests/test_iso15118_xmldsig20.py, never imported by v2gstack. One JSON request on stdin, one JSON answer on
stdout. Both operations go through exactly the calls the reference's -20 EVCC and SECC make
(evcc/states/iso15118_20_states.py AuthorizationSetup, secc/states/iso15118_20_states.py Authorization):
  {"op": "sign", "exi": "<hex AuthorizationReq without Signature>", "key_pem": "..."}
      -> {"ok": true, "exi": "<hex AuthorizationReq with the reference's header Signature>"}
  {"op": "verify", "exi": "<hex signed AuthorizationReq>"}
      -> {"ok": true, "valid": bool, "error": "..."}  (verify_signature's verdict, or what it raised)
A message the reference cannot even parse answers {"ok": false, "error": "<its exception>"}.
"""

from __future__ import annotations

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from iso15118.shared.exi_codec import EXI
from iso15118.shared.exificient_exi_codec import ExificientEXICodec
from iso15118.shared.messages.enums import Namespace
from iso15118.shared.security import create_signature, verify_signature
from iso15118.shared.settings import load_shared_settings

NS = Namespace.ISO_V20_COMMON_MSG


def main() -> None:
    req = json.loads(sys.stdin.read())
    load_shared_settings()
    EXI().set_exi_codec(ExificientEXICodec())
    try:
        msg = EXI().from_exi(bytes.fromhex(req["exi"]), NS)
    except Exception as exc:
        cause = exc.__cause__ or exc
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {type(cause).__name__}: {cause}"}))
        return
    pnc = msg.pnc_params
    elements = [(pnc.id, EXI().to_exi(pnc, NS))]
    if req["op"] == "sign":
        key = load_pem_private_key(req["key_pem"].encode(), password=None)
        msg.header.signature = create_signature(elements, key)
        print(json.dumps({"ok": True, "exi": EXI().to_exi(msg, NS).hex()}))
        return
    try:
        valid = verify_signature(msg.header.signature, elements, pnc.contract_cert_chain.certificate)
        print(json.dumps({"ok": True, "valid": bool(valid), "error": ""}))
    except Exception as exc:
        print(json.dumps({"ok": True, "valid": False, "error": f"{type(exc).__name__}: {exc}"}))


if __name__ == "__main__":
    main()
