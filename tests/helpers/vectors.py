"""The reference EXI vectors (coded by the reference stack), with namespace keys and fragment flags as v2gstack's."""

from __future__ import annotations

import json

from helpers.paths import VECTORS

# namespace names used by the reference stack's logs -> v2gstack namespace keys
REF_NS = {
    "SAP": "appHand", "DIN_MSG_DEF": "din", "ISO_V2_MSG_DEF": "iso2", "ISO_V20_COMMON_MSG": "iso20",
    "ISO_V20_AC": "iso20_ac", "ISO_V20_DC": "iso20_dc", "ISO_V20_WPT": "iso20_wpt",
    "ISO_V20_ACDP": "iso20_acdp", "XML_DSIG": "xmldsig",
}
DOCUMENT_ROOTS = {"V2G_Message", "supportedAppProtocolReq", "supportedAppProtocolRes"}


def is_fragment(ns: str, root: str) -> bool:
    """How the reference vectors are coded: see ../shared/vectors/README.md."""
    if ns == "xmldsig":
        return True
    if ns == "iso2" or ns == "din":
        return root not in DOCUMENT_ROOTS
    return root == "PnC_AReqAuthorizationMode"


def load_reference_vectors() -> list[dict]:
    """Every reference vector (none when the shared folder is missing)."""
    if not VECTORS.exists():
        return []
    out = []
    for line in VECTORS.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            d["ns"] = REF_NS[d["ns"]]
            d["fragment"] = is_fragment(d["ns"], next(iter(d["json"])))
            out.append(d)
    return out
