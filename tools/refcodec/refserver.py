"""JSON-lines server around the reference EXI codec of the `iso15118` package 0.31.2 (Josev).

Runs under .venv-ref/bin/python (made by tools/refcodec/setup.sh), never inside v2gstack's own
environment. The codec is EXIficient in the Java jar that `iso15118` ships (codec version 1.55), driven
over py4j exactly as Josev drives it (`iso15118.shared.exificient_exi_codec.ExificientEXICodec`).

Protocol: one JSON object per line on stdin, one JSON line per request on stdout.
  {"op": "encode", "ns": NS, "json": {...}, "fragment": bool[, "check": bool]} -> {"ok": true, "exi": "<hex>"}
  {"op": "decode", "ns": NS, "exi": "<hex>", "fragment": bool} -> {"ok": true, "json": {...}}
  {"op": "time", "ns": NS, "json": {...}, "exi": "<hex>", "fragment": bool, "n": N[, "warmup": W]}
      -> {"ok": true, "encode_us": median, "decode_us": median}
  {"op": "version"} -> {"ok": true, "codec": "<jar codec version>", "iso15118": "<package version>"}
  Any failure -> {"ok": false, "error": "..."}; the server keeps running.

NS is v2gstack's namespace key (NAMESPACES below maps it to the URI Josev passes to the jar).

encode "check" (default true): the jar is lenient and never says no to a well-formed JSON: it drops
unknown keys (an unknown Body child gives an empty Body), keeps only the last of two Body children,
takes a single object for a list and "1" for 1, omits an empty list, writes out-of-range values,
missing required elements and roots that are not in the namespace's schema as schema-deviant EXI
(strict=false), and rebuilds xmldsig SignedInfo from fixed parts. With check, the stream is decoded
again and must give back the input JSON exactly, otherwise the answer is an error naming the first
difference; "check": false returns whatever the jar wrote.

Timing is what a Josev user pays per message: encode = json.dumps(dict) + the py4j call
EXICodec.encode(json string, namespace) returning bytes; decode = the py4j call
EXICodec.decode(bytes, namespace) returning a JSON string + json.loads. N timed calls of each after W
warm-up calls (default W = N), median per call in microseconds. (iso2 / iso20 fragments, which Josev
never decodes, time the fragment path described below.) Most of the cost is the jar's own: every
encode and decode call outside appHand builds a new JAXBContext (AbstractEXICodec.setJAXBContext).

What the jar can code:
- appHand, din, iso2, iso20, iso20_ac, iso20_dc: documents (roots supportedAppProtocolReq/Res,
  V2G_Message, the -20 message elements).
- iso20_wpt, iso20_acdp: nothing. The jar has their EXI grammars but sets no JAXB binding for them,
  so it binds the JSON with whatever namespace was used before (DC messages given to ns=iso20_wpt
  come out as schema-deviant EXI, WPT messages fail). This server refuses both namespaces.
Fragments: the jar has no fragment switch; it decides from the namespace and the JSON root.
- encode uses fragment mode exactly for
  - xmldsig: always, and only for a SignedInfo root. The jar does NOT encode the JSON given: it builds
    SignedInfo itself with fixed algorithms (CanonicalizationMethod and Transform canonical-exi,
    SignatureMethod ecdsa-sha256, DigestMethod sha256, one Transform per Reference) and takes only
    URI and DigestValue of each Reference (Id/Type attributes etc. are dropped; "check" catches it).
  - iso2: roots AuthorizationReq, CertificateInstallationReq, MeteringReceiptReq, SignedInfo (through
    the normal JSON binding) and ContractSignatureCertChain, ContractSignatureEncryptedPrivateKey,
    DHpublickey, eMAID, SalesTariff (through hand-written JSON readers in the jar). The SalesTariff
    reader knows only RelativeTimeInterval and reads Multiplier/amountMultiplier as base64 strings
    and Cost/amount from the costKind key, so a SalesTariff with ConsumptionCost cannot be encoded.
  - iso20 (CommonMessages): roots OEMProvisioningCertificateChain, PnC_AReqAuthorizationMode
    (hand-written readers). iso20 AuthorizationReq is always coded as a document.
  - never in any other namespace.
  The `fragment` flag must agree with that choice; a mismatch is an error, not bytes of the other kind.
- decode: the jar uses fragment mode for xmldsig only, and its JAXB binding knows the iso2 / iso20
  fragment roots above only as types. For fragment=true in iso2 / iso20 this server switches the jar's
  EXIFactory to fragment mode (reflection on its `exiFactory` field), lets the jar decode the stream
  to XML, and binds that XML to the root's JAXB class, marshalling it to JSON as the jar's own decode
  does. Josev itself never decodes these fragments. xmldsig decodes only as a fragment.

Errors the jar only prints (after "Error encoding stream: ..." on System.out it returns a truncated
stream) are caught by capturing the JVM's System.out and turned into errors here.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from importlib import metadata

# v2gstack namespace key -> namespace URI the reference codec is called with (Josev's Namespace enum).
NAMESPACES = {
    "appHand": "urn:iso:15118:2:2010:AppProtocol",  # Namespace.SAP
    "din": "urn:din:70121:2012:MsgDef",  # Namespace.DIN_MSG_DEF
    "iso2": "urn:iso:15118:2:2013:MsgDef",  # Namespace.ISO_V2_MSG_DEF
    "iso20": "urn:iso:std:iso:15118:-20:CommonMessages",  # Namespace.ISO_V20_COMMON_MSG
    "iso20_ac": "urn:iso:std:iso:15118:-20:AC",  # Namespace.ISO_V20_AC
    "iso20_dc": "urn:iso:std:iso:15118:-20:DC",  # Namespace.ISO_V20_DC
    "iso20_wpt": "urn:iso:std:iso:15118:-20:WPT",  # Namespace.ISO_V20_WPT
    "iso20_acdp": "urn:iso:std:iso:15118:-20:ACDP",  # Namespace.ISO_V20_ACDP
    "xmldsig": "http://www.w3.org/2000/09/xmldsig#",  # Namespace.XML_DSIG
}
UNSUPPORTED = {"iso20_wpt", "iso20_acdp"}

JAVA_CODEC_CLASS = "com.siemens.ct.exi.main.cmd.AbstractEXICodec"

# Fragment roots the jar encodes in iso2 / iso20 -> its JAXB class for them.
_ISO2 = "com.siemens.ct.exi.main.messages.iso15118_2."
_ISO20 = "com.siemens.ct.exi.main.messages.iso15118_20.commonmessages."
FRAGMENT_TYPES = {
    "iso2": {
        "AuthorizationReq": _ISO2 + "AuthorizationReqType",
        "CertificateInstallationReq": _ISO2 + "CertificateInstallationReqType",
        "MeteringReceiptReq": _ISO2 + "MeteringReceiptReqType",
        "SignedInfo": _ISO2 + "SignedInfoType",
        "ContractSignatureCertChain": _ISO2 + "CertificateChainType",
        "ContractSignatureEncryptedPrivateKey": _ISO2 + "ContractSignatureEncryptedPrivateKeyType",
        "DHpublickey": _ISO2 + "DiffieHellmanPublickeyType",
        "eMAID": _ISO2 + "EMAIDType",
        "SalesTariff": _ISO2 + "SalesTariffType",
    },
    "iso20": {
        "OEMProvisioningCertificateChain": _ISO20 + "SignedCertificateChainType",
        "PnC_AReqAuthorizationMode": _ISO20 + "PnCAReqAuthorizationModeType",
    },
}
_XML_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


class RefError(Exception):
    pass


def first_difference(got: object, want: object, path: str = "") -> str | None:
    """Where two JSON values differ first, as 'path: got X, want Y'; None when equal."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            if key not in got or key not in want:
                return f"{path}/{key}: {'missing' if key not in got else 'extra'} in the decoded JSON"
            diff = first_difference(got[key], want[key], f"{path}/{key}")
            if diff:
                return diff
        return None
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff = first_difference(g, w, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if got == want and type(got) is type(want):
        return None
    return f"{path or '/'}: decoded {json.dumps(got)[:200]}, given {json.dumps(want)[:200]}"


class Server:
    def __init__(self) -> None:
        from iso15118.shared.exificient_exi_codec import ExificientEXICodec

        self.codec = ExificientEXICodec()  # launches the JVM, as Josev does
        self.jvm = jvm = self.codec.gateway.jvm
        # Capture the JVM's System.out so that errors the jar only prints become errors here.
        self._jout = jvm.java.io.ByteArrayOutputStream()
        jvm.java.lang.System.setOut(jvm.java.io.PrintStream(self._jout, True))
        # The jar's EXIFactory, to switch fragment decoding on for iso2 / iso20 fragments.
        field = jvm.java.lang.Class.forName(JAVA_CODEC_CLASS).getDeclaredField("exiFactory")
        field.setAccessible(True)
        self._factory = field.get(self.codec.exi_codec)
        # FRAGMENT_TYPES must name exactly the roots the jar encodes as fragments (its public statics).
        jar = getattr(jvm, JAVA_CODEC_CLASS)
        jar_roots = {
            "iso2": set(jar.fragmentGrammarElements_ISO15118_2) | set(jar.signatureElements),
            "iso20": set(jar.signatureElements_20),
        }
        if jar_roots != {ns: set(types) for ns, types in FRAGMENT_TYPES.items()}:
            raise RuntimeError(f"the reference jar's fragment roots are not the expected ones: {jar_roots}")

    # -- checks ------------------------------------------------------------------------------------

    @staticmethod
    def _ns(req: dict) -> tuple[str, str, bool]:
        ns = req.get("ns")
        if ns not in NAMESPACES:
            raise RefError(f"unknown namespace {ns!r}; expected one of {', '.join(NAMESPACES)}")
        if ns in UNSUPPORTED:
            raise RefError(f"the reference codec cannot code {ns} messages (its jar has no JAXB binding for them)")
        fragment = req.get("fragment", False)
        if not isinstance(fragment, bool):
            raise RefError("fragment must be true or false")
        return ns, NAMESPACES[ns], fragment

    @staticmethod
    def _doc(req: dict, ns: str, fragment: bool) -> dict:
        doc = req.get("json")
        if not isinstance(doc, dict) or len(doc) != 1:
            raise RefError("json must be an object with exactly one key, the root element")
        root = next(iter(doc))
        as_fragment = ns == "xmldsig" or root in FRAGMENT_TYPES.get(ns, ())  # AbstractEXICodec.UseFragmentMode
        if as_fragment != fragment:
            kind = "a fragment" if as_fragment else "a document"
            raise RefError(f"the reference codec always encodes root {root!r} in {ns} as {kind}")
        return doc

    @staticmethod
    def _exi(req: dict, ns: str, fragment: bool) -> bytes:
        if ns == "xmldsig" and not fragment:
            raise RefError("the reference codec decodes xmldsig only as a fragment")
        try:
            return bytes.fromhex(req["exi"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RefError(f"exi must be a hex string: {exc}") from None

    def _java_output(self) -> None:
        if self._jout.size():
            text = self._jout.toString().strip()
            self._jout.reset()
            raise RefError(f"reference codec: {text}")

    # -- codec calls -------------------------------------------------------------------------------

    def _decoder(self, ns: str, fragment: bool):
        """The call that decodes bytes to a JSON string: Josev's own, or the fragment path."""
        if fragment and ns != "xmldsig":  # xmldsig: the jar switches fragment mode itself
            return lambda data, uri: self._decode_fragment(data, uri, ns)
        return self.codec.decode  # raises with the jar's get_last_decoding_error()

    def _decode_fragment(self, data: bytes, uri: str, ns: str) -> str:
        java = self.codec.exi_codec
        java.setDecodedExi("")
        self._factory.setFragment(True)
        try:
            text = java.decode(data, uri)
        finally:
            self._factory.setFragment(False)
        if text is not None:
            return text
        xml = java.getDecodedExi()
        if not xml:  # the EXI stream itself did not decode
            raise RefError(java.get_last_decoding_error())
        match = _XML_ROOT.search(xml)
        root = match.group(1) if match else ""
        cls = FRAGMENT_TYPES[ns].get(root)
        if cls is None:
            raise RefError(f"the reference codec has no fragment binding for {root!r} in {ns}")
        jvm = self.jvm
        source = jvm.javax.xml.transform.stream.StreamSource(jvm.java.io.StringReader(xml))
        element = java.getUnmarshaller().unmarshal(source, jvm.java.lang.Class.forName(cls))
        # Marshal as the jar's own decode does (AbstractEXICodec.marshallToJSON).
        marshaller = java.getMarshaller()
        marshaller.setProperty("eclipselink.media-type", "application/json")
        marshaller.setProperty("eclipselink.json.include-root", True)
        out = jvm.java.io.StringWriter()
        try:
            marshaller.marshal(element, out)
        finally:
            marshaller.setProperty("eclipselink.media-type", "application/xml")
        return out.toString()

    def _encode(self, doc: dict, uri: str) -> bytes:
        exi = self.codec.encode(json.dumps(doc), uri)  # raises with get_last_encoding_error()
        self._java_output()
        return bytes(exi)

    def _decode(self, data: bytes, uri: str, ns: str, fragment: bool) -> dict:
        text = self._decoder(ns, fragment)(data, uri)
        self._java_output()
        return json.loads(text)

    # -- operations --------------------------------------------------------------------------------

    def op_version(self, req: dict) -> dict:
        return {"codec": f"{self.codec.get_version():.2f}", "iso15118": metadata.version("iso15118")}

    def op_encode(self, req: dict) -> dict:
        ns, uri, fragment = self._ns(req)
        doc = self._doc(req, ns, fragment)
        exi = self._encode(doc, uri)
        if req.get("check", True):
            try:
                back = self._decode(exi, uri, ns, fragment)
            except Exception as exc:
                raise RefError(f"the reference codec wrote {exi.hex()}, which it cannot decode: {exc}") from None
            diff = first_difference(back, doc)
            if diff:
                raise RefError(f"the reference codec did not encode the JSON as given ({exi.hex()}): {diff}")
        return {"exi": exi.hex()}

    def op_decode(self, req: dict) -> dict:
        ns, uri, fragment = self._ns(req)
        return {"json": self._decode(self._exi(req, ns, fragment), uri, ns, fragment)}

    def op_time(self, req: dict) -> dict:
        ns, uri, fragment = self._ns(req)
        doc = self._doc(req, ns, fragment)
        data = self._exi(req, ns, fragment)
        n, warmup = req.get("n", 200), req.get("warmup", req.get("n", 200))
        if not (isinstance(n, int) and isinstance(warmup, int) and n >= 1 and warmup >= 0):
            raise RefError("n must be an integer >= 1 and warmup an integer >= 0")
        # One checked call of each first, so that an error path is never what gets timed.
        self._encode(doc, uri)
        self._decode(data, uri, ns, fragment)

        encode, decode, clock = self.codec.encode, self._decoder(ns, fragment), time.perf_counter_ns
        enc_ns, dec_ns = [], []
        for i in range(warmup + n):
            t0 = clock()
            encode(json.dumps(doc), uri)
            t1 = clock()
            if i >= warmup:
                enc_ns.append(t1 - t0)
        for i in range(warmup + n):
            t0 = clock()
            json.loads(decode(data, uri))
            t1 = clock()
            if i >= warmup:
                dec_ns.append(t1 - t0)
        self._java_output()
        return {"encode_us": statistics.median(enc_ns) / 1000, "decode_us": statistics.median(dec_ns) / 1000}

    def handle(self, line: str) -> dict:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise RefError("a request must be a JSON object")
            op = getattr(self, f"op_{req.get('op')}", None)
            if op is None:
                raise RefError(f"unknown op {req.get('op')!r}; expected encode, decode, time or version")
            return {"ok": True, **op(req)}
        except RefError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # the jar's errors (py4j, JSON, ...): an answer, the server keeps running
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    # Keep the protocol channel clean: anything else that prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    server = Server()
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(server.handle(line)) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
