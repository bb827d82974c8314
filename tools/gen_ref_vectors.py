"""Make tests/data/exi-generated.jsonl: random valid documents of every message type, encoded by the reference codec.

The reference codec is EXIficient as the `iso15118` package 0.31.2 drives it (served from .venv-ref by
tools/refcodec/refserver.py; `make ref-venv` installs it). Each kept vector is one the reference encoded and decoded
back to the same JSON, so its bytes are EXIficient's. v2gstack is not consulted here: the test suite then checks that
v2gstack encodes each document to exactly those bytes and decodes the bytes to exactly that document.

    .venv/bin/python tools/gen_ref_vectors.py [--per-root 6] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.refcodec import RefCodec, RefCodecError  # noqa: E402

from v2gstack.exi.codec import namespace  # noqa: E402
from v2gstack.exi.samples import message_roots, random_document, random_element  # noqa: E402

XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"


def namespace_uri(ns: str, root: str) -> str:
    _, _, qid = namespace(ns).doc_index[root]
    return namespace(ns).qnames[qid][0]


def v2g_message(ns: str, body: str, rng: random.Random) -> dict:
    """A DIN / -2 V2G_Message with a random header and a random `body` message."""
    codec = namespace(ns)
    header = random_document(ns, "V2G_Message", rng)["V2G_Message"]["Header"]
    _, gid, _ = codec.doc_index[body]
    return {"V2G_Message": {"Header": header, "Body": {body: random_element(codec, codec.grammars[gid], rng)}}}


def body_messages(ns: str) -> list[str]:
    """The concrete members of the Body's substitution group (every -2 / DIN message)."""
    codec = namespace(ns)
    names = {k for g in codec.grammars if g.name == "BodyType" for k in g.keys}
    return sorted(n for n in names if n != "BodyElement")


def emaid(rng: random.Random) -> str:
    """An eMAID such as DE8AA001234567 (country, provider, instance, optional check digit)."""
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return rng.choice(["DE", "NL", "FR", "UK"]) + "".join(rng.choice(chars) for _ in range(rng.randint(12, 13)))


def sales_tariff(rng: random.Random) -> dict:
    """A -2 SalesTariff the reference's hand-written reader can take (RelativeTimeInterval, no ConsumptionCost)."""
    entries = []
    start = 0
    for _ in range(rng.randint(1, 5)):
        entry: dict = {"RelativeTimeInterval": {"start": start}, "EPriceLevel": rng.randint(0, 255)}
        if rng.random() < 0.5:
            entry["RelativeTimeInterval"]["duration"] = rng.randint(1, 86400)
        entries.append(entry)
        start += rng.randint(60, 7200)
    tariff: dict = {"Id": f"id{rng.randint(1, 99)}", "SalesTariffID": rng.randint(1, 255),
                    "NumEPriceLevels": rng.randint(1, 255), "SalesTariffEntry": entries}
    if rng.random() < 0.5:
        tariff["SalesTariffDescription"] = rng.choice(["green", "night rate", "peak"])
    return {"SalesTariff": tariff}


def signed_info(rng: random.Random) -> dict:
    """SignedInfo as ISO 15118 signs it (the reference codec only codes this shape)."""
    exi_c14n = "http://www.w3.org/TR/canonical-exi/"
    refs = [{"URI": f"#id{i}", "Transforms": {"Transform": [{"Algorithm": exi_c14n}]},
             "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
             "DigestValue": base64.b64encode(rng.randbytes(32)).decode()} for i in range(rng.randint(1, 4))]
    return {"SignedInfo": {"CanonicalizationMethod": {"Algorithm": exi_c14n},
                           "SignatureMethod": {"Algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
                           "Reference": refs}}

# fragments the reference codec can encode (see tools/refcodec/refserver.py)
FRAGMENTS = {
    "xmldsig": ["SignedInfo"],
    "iso2": ["AuthorizationReq", "CertificateInstallationReq", "MeteringReceiptReq", "ContractSignatureCertChain",
             "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID", "SalesTariff"],
    "iso20": ["OEMProvisioningCertificateChain", "PnC_AReqAuthorizationMode"],
}
DOCUMENT_NAMESPACES = ["appHand", "din", "iso2", "iso20", "iso20_ac", "iso20_dc"]  # the jar cannot code WPT/ACDP


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-root", type=int, default=6, help="documents tried per root element")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "exi-generated.jsonl")
    args = ap.parse_args()
    if not RefCodec.available():
        print("no working reference codec: run `make ref-venv` (needs Java)", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    jobs: list[tuple[str, str, bool]] = []
    for ns in DOCUMENT_NAMESPACES:
        # xmldsig's global elements are global in -20 schema sets too, but the reference codes them as SE(*)
        if ns in ("din", "iso2"):
            roots = [f"V2G_Message/{m}" for m in body_messages(ns)]
        else:
            roots = [r for r in message_roots(ns) if namespace_uri(ns, r) != XMLDSIG]
        jobs += [(ns, root, False) for root in roots]
    for ns, roots in FRAGMENTS.items():
        jobs += [(ns, root, True) for root in roots]
    # -2 / DIN documents: one V2G_Message per body element, so every message type is covered
    kept: list[dict] = []
    refused: Counter[str] = Counter()
    start = time.monotonic()
    with RefCodec() as ref:
        for i, (ns, root, fragment) in enumerate(jobs):
            per_root = args.per_root
            got = 0
            for _ in range(per_root * 8):  # the reference refuses some shapes (see refserver.py): try more
                if got >= per_root:
                    break
                if ns == "xmldsig":
                    doc = signed_info(rng)
                elif root == "eMAID" and fragment:
                    doc = {"eMAID": {"Id": f"id{rng.randint(1, 9)}", "value": emaid(rng)}}
                elif root == "SalesTariff":
                    doc = sales_tariff(rng)
                elif root.startswith("V2G_Message/"):
                    doc = v2g_message(ns, root.split("/")[1], rng)
                else:
                    doc = random_document(ns, root, rng, fragment=fragment)
                try:
                    data = ref.encode(ns, doc, fragment=fragment)
                except RefCodecError as e:
                    refused[f"{ns}:{root}: {str(e)[:90]}"] += 1
                    continue
                kept.append({"ns": ns, "fragment": fragment, "exi": data.hex(), "json": doc})
                got += 1
            print(f"[{i + 1}/{len(jobs)}] {ns}:{root}{' (fragment)' if fragment else ''}: {got}/{per_root} kept "
                  f"({time.monotonic() - start:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for v in kept:
            f.write(json.dumps(v, separators=(",", ":")) + "\n")
    print(f"wrote {len(kept)} vectors to {args.out.name}")
    if refused:
        print(f"{sum(refused.values())} documents the reference refused or altered, most common reasons:")
        for reason, count in refused.most_common(25):
            print(f"  {count:4d}  {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
