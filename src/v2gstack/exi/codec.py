"""Grammar-driven EXI encoder and decoder over the generated tables (one `Namespace` per schema).

A grammar state is `(width, prods)`; `prods[code]` is `(kind, key, arg, next, mode)`. A state of a
repeating particle is a selector `(None, min, max, below_min, middle, at_max)` resolved by the count n.
"""

from __future__ import annotations

import importlib
from typing import Any

from .bitstream import BitReader, BitWriter
from .datatypes import compile_type
from .errors import ExiDecodeError, ExiEncodeError

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
HEADER = 0x80  # distinguishing bits 10, no options, final version 1
NAMESPACES = ("appHand", "din", "iso2", "iso20", "iso20_ac", "iso20_dc", "iso20_wpt", "iso20_acdp", "xmldsig")


class Grammar:
    """One element grammar: decode states as generated, plus per-state encode tables keyed by JSON key."""

    __slots__ = ("enc", "keys", "keyset", "list_keys", "name", "simple_value", "states")

    def __init__(self, name: str, keys: tuple, list_keys: tuple, simple_value: bool, states: tuple) -> None:
        self.name = name
        self.keys = keys
        self.keyset = frozenset(keys)
        self.list_keys = frozenset(list_keys)
        self.simple_value = simple_value
        self.states = states
        enc: list[tuple] = []
        for s in states:
            if s[0] is None:
                enc.append(s)
                continue
            width, prods = s
            table: dict[str, tuple] = {}
            ee = None
            for code, (kind, key, arg, nxt, mode) in enumerate(prods):
                if kind == EE:
                    ee = code
                elif kind in (AT, SE, CH):
                    table[key] = (code, kind, arg, nxt, mode)
            enc.append((width, table, ee))
        self.enc = tuple(enc)


class Namespace:
    """The compiled grammars of one namespace and the entry points to code documents and fragments."""

    def __init__(self, key: str) -> None:
        mod = importlib.import_module(f"v2gstack.exi.generated.{key}")
        self.key = key
        self.qnames: tuple = mod.QNAMES
        compiled = [compile_type(t) for t in mod.TYPES]
        self.dec_types = tuple(c[0] for c in compiled)
        self.enc_types = tuple(c[1] for c in compiled)
        self.grammars = tuple(Grammar(*g) for g in mod.GRAMMARS)
        self.doc_width, docs = mod.DOCUMENT
        self.frag_width, frags = mod.FRAGMENT
        self.doc_elements = docs
        self.frag_elements = frags
        self.doc_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(docs)}
        self.frag_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(frags)}

    # ------------------------------------------------------------------ decoding
    def decode(self, data: bytes, fragment: bool) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ExiDecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        start = 0
        if data[:4] == b"$EXI":
            start = 4
        if len(data) <= start:
            raise ExiDecodeError("empty stream")
        header = data[start]
        if header >> 6 != 0b10:
            raise ExiDecodeError(f"bad EXI header byte 0x{header:02x} (distinguishing bits must be 10)")
        if header & 0x20:
            raise ExiDecodeError("EXI options in the header are not supported (ISO 15118 uses none)")
        if header & 0x1F:
            raise ExiDecodeError(f"unsupported EXI format version in header byte 0x{header:02x}")
        r = BitReader(data, (start + 1) * 8)
        try:
            return self._decode_body(r, fragment)
        except RecursionError:
            raise ExiDecodeError("document nested too deeply", r.p) from None

    def _decode_body(self, r: BitReader, fragment: bool) -> dict[str, Any]:
        elements = self.frag_elements if fragment else self.doc_elements
        code = r.bits(self.frag_width if fragment else self.doc_width)
        if code >= len(elements):
            what = "SE(*)" if code == len(elements) else "ED" if fragment and code == len(elements) + 1 else None
            if what:
                raise ExiDecodeError(f"{what} at the root is not supported: expected a schema-declared element", r.p)
            raise ExiDecodeError(f"invalid root event code {code}", r.p)
        name, gid, qid = elements[code]
        if gid < 0:
            raise ExiDecodeError(f"fragment root {name!r} has several declarations (relaxed grammar)", r.p)
        value = self._decode_element(r, self.grammars[gid], qid)
        if fragment:
            end = r.bits(self.frag_width)
            if end != len(elements) + 1:
                raise ExiDecodeError("a fragment with more than one element is not supported", r.p)
        return {name: value}

    def _decode_element(self, r: BitReader, g: Grammar, qid: int) -> Any:
        states = g.states
        list_keys = g.list_keys
        dec_types = self.dec_types
        s = states[0]
        out: dict[str, Any] = {}
        value: Any = None
        n = 0
        while True:
            if s[0] is None:
                _, lo, hi, below, middle, at_max = s
                s = states[below if n < lo else middle if hi is None or n < hi else at_max]
            width, prods = s
            code = r.bits(width) if width else 0
            if code >= len(prods):
                if code == len(prods):
                    raise ExiDecodeError(
                        f"{g.name}: second-level event (schema deviation) is not supported", r.p)
                raise ExiDecodeError(f"{g.name}: invalid event code {code}", r.p)
            kind, key, arg, nxt, mode = prods[code]
            if kind == SE:
                v = self._decode_element(r, self.grammars[arg[0]], arg[1])
                if key in list_keys:
                    if key in out:
                        out[key].append(v)
                    else:
                        out[key] = [v]
                else:
                    out[key] = v
                n = n + 1 if mode else 1
            elif kind == AT:
                out[key] = dec_types[arg[0]](r, arg[1])
            elif kind == CH:
                value = dec_types[arg[0]](r, qid)
                if g.simple_value:
                    s = states[nxt]
                    continue
                out["value"] = value
            elif kind == EE:
                return value if g.simple_value else out
            else:
                raise ExiDecodeError(f"{g.name}: wildcard or mixed content is not supported", r.p)
            s = states[nxt]

    # ------------------------------------------------------------------ encoding
    def encode(self, doc: dict[str, Any], fragment: bool) -> bytes:
        if not isinstance(doc, dict) or len(doc) != 1:
            raise ExiEncodeError("the document must be a dict with exactly one root element")
        (name, value), = doc.items()
        index = self.frag_index if fragment else self.doc_index
        entry = index.get(name)
        if entry is None:
            kind = "fragment element" if fragment else "global element"
            raise ExiEncodeError(f"{name!r} is not a {kind} of namespace {self.key!r}", [name])
        code, gid, qid = entry
        if gid < 0:
            raise ExiEncodeError(f"{name!r} has several declarations; cannot code it as a fragment", [name])
        w = BitWriter()
        w.bits(8, HEADER)
        w.bits(self.frag_width if fragment else self.doc_width, code)
        try:
            self._encode_element(w, self.grammars[gid], qid, value)
        except ExiEncodeError as e:
            e.path.insert(0, name)
            raise
        except RecursionError:
            raise ExiEncodeError("document nested too deeply", [name]) from None
        if fragment:
            w.bits(self.frag_width, len(self.frag_elements) + 1)
        return w.getvalue()

    def _encode_element(self, w: BitWriter, g: Grammar, qid: int, v: Any) -> None:
        if g.simple_value:
            width, table, _ = g.enc[0]
            code, _, arg, nxt, _ = table["value"]
            w.bits(width, code)
            self.enc_types[arg[0]](w, v, qid)
            width, _, ee = g.enc[nxt]
            w.bits(width, ee)
            return
        if not isinstance(v, dict):
            raise ExiEncodeError(f"expected an object for {g.name}, got {type(v).__name__}")
        if not g.keyset.issuperset(v):
            unknown = sorted(set(v) - g.keyset)
            raise ExiEncodeError(f"unknown field(s) {unknown}; {g.name} allows {list(g.keys)}")
        states = g.enc
        s = states[0]
        n = 0
        key = ""
        try:
            for key in g.keys:
                if key not in v:
                    continue
                x = v[key]
                if key in g.list_keys:
                    if not isinstance(x, list):
                        raise ExiEncodeError(f"expected a list (the element may occur more than once), "
                                             f"got {type(x).__name__}")
                    items = x
                else:
                    items = (x,)
                for item in items:
                    if s[0] is None:
                        _, lo, hi, below, middle, at_max = s
                        s = states[below if n < lo else middle if hi is None or n < hi else at_max]
                    width, table, _ = s
                    t = table.get(key)
                    if t is None:
                        raise ExiEncodeError(self._unexpected(g, s, key, n))
                    code, kind, arg, nxt, mode = t
                    w.bits(width, code)
                    if kind == SE:
                        self._encode_element(w, self.grammars[arg[0]], arg[1], item)
                        n = n + 1 if mode else 1
                    else:
                        self.enc_types[arg[0]](w, item, qid if kind == CH else arg[1])
                    s = states[nxt]
            key = ""
            if s[0] is None:
                _, lo, hi, below, middle, at_max = s
                s = states[below if n < lo else middle if hi is None or n < hi else at_max]
            width, table, ee = s
            if ee is None:
                raise ExiEncodeError(f"required field missing: expected one of {sorted(table)}")
            w.bits(width, ee)
        except ExiEncodeError as e:
            if key:
                e.path.insert(0, key)
            raise

    @staticmethod
    def _unexpected(g: Grammar, s: tuple, key: str, n: int) -> str:
        allowed = sorted(s[1])
        if key in allowed:
            return f"{key!r} is not allowed here"
        if n and key in g.list_keys:
            return f"too many occurrences of {key!r}"
        return f"{key!r} is not allowed at this point (a required field before it is missing, or a choice " \
               f"was already made); expected one of {allowed}"


_cache: dict[str, Namespace] = {}


def namespace(key: str) -> Namespace:
    ns = _cache.get(key)
    if ns is None:
        if key not in NAMESPACES:
            raise ValueError(f"unknown EXI namespace {key!r}; known: {', '.join(NAMESPACES)}")
        ns = _cache[key] = Namespace(key)
    return ns
