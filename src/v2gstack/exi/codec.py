"""Schema-informed EXI encoder and decoder over the generated tables (one `Namespace` per schema).

A grammar state is `(width, prods)`; `prods[code]` is `(kind, key, arg, next, mode)`. A state of a
repeating particle is a selector `(None, min, max, below_min, middle, at_max)` resolved by the count n.
Each grammar is coded by a decoder and an encoder that `specialize` writes from its states.

Both directions remember their recent small documents (`Memo`): a charge loop sends and receives nearly the same
message four times a second, and looking a document up costs a fraction of coding it again.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
from collections.abc import Callable
from typing import Any

from . import specialize
from .bitstream import BitReader, BitWriter
from .datatypes import allows_empty, compile_type, fixed_width_table
from .errors import ExiDecodeError, ExiEncodeError

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
HEADER = 0x80  # distinguishing bits 10, no options, final version 1
RELAXED = "(relaxed fragment grammar)"  # how the grammar compiler names a fragment element's relaxed grammar
NAMESPACES = ("appHand", "din", "iso2", "iso20", "iso20_ac", "iso20_dc", "iso20_wpt", "iso20_acdp", "xmldsig")


MEMO_ENTRIES = 512
"""Documents each Namespace remembers per direction (all forgotten when full: cheaper than ageing them); a full
-2 pair holds about 2.5 MB."""
MEMO_MAX_BYTES = 256
"""Only documents of at most this many EXI bytes are remembered (charge loops, not certificates or schedules)."""
SNAPSHOT_PROTOCOL = 5
"""The pickle protocol of the memo's snapshots (fixed: the same document must always snapshot alike)."""
UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


def snapshot(doc: dict[str, Any]) -> bytes:
    """A document's pickle: equal snapshots are equal documents of the same structure, key order and leaf types
    (True, 1 and 1.0 pickle apart), so they code alike; an equal document may snapshot differently (a string object
    met twice is pickled once), which only costs a miss. It is not a tree of tuples, so the garbage collector does
    not walk what the memo holds, and making it costs about half of freezing the document into tuples.
    Raises pickle.PicklingError, TypeError or AttributeError for what cannot be pickled."""
    return pickle.dumps(doc, SNAPSHOT_PROTOCOL)


class Memo:
    """The recent results of one direction of one Namespace: key -> value, at most MEMO_ENTRIES (emptied when
    full). Coding is a pure function of the bytes (decoding: string tables start empty in every stream) or of the
    document's snapshot (encoding never uses string-table hits), so a remembered answer is the answer. Decoded
    documents are kept as snapshots too: each hit unpickles a document of the caller's own, and a miss hands out
    the document it decoded without copying it."""

    __slots__ = ("entries", "hits", "misses")

    def __init__(self) -> None:
        self.entries: dict[Any, Any] = {}
        self.hits = self.misses = 0

    def put(self, key: Any, value: Any) -> None:
        """Remember `value` under `key` (forgetting everything first when full: deleting the oldest entry of a dict
        one at a time makes finding the next oldest ever slower)."""
        entries = self.entries
        if len(entries) >= MEMO_ENTRIES:
            entries.clear()
        entries[key] = value


class Grammar:
    """One element grammar as generated, with per-state encode tables keyed by JSON key; its decoder and encoder
    are written by `specialize` the first time it is used."""

    __slots__ = ("empty_ok", "enc", "gid", "keys", "keyset", "list_keys", "name", "raw", "simple_value")

    def __init__(self, gid: int, name: str, keys: tuple, list_keys: tuple, simple_value: bool, states: tuple) -> None:
        self.gid = gid
        self.name = name
        self.keys = keys
        self.keyset = frozenset(keys)
        self.list_keys = frozenset(list_keys)
        self.simple_value = simple_value
        self.raw = states  # as generated: (width, prods) or a selector (None, min, max, below, middle, at_max)
        self.empty_ok = False  # a simple-typed element whose value may be empty (string or binary)
        self.enc: tuple = ()  # per state: (width, {key: (code, kind, next)}, EE code or None), or its selector

    def link(self, ns: Namespace) -> None:
        """Build the encode tables."""
        enc: list[tuple] = []
        if self.simple_value:
            (_, _, (tid, _), _, _), = self.raw[0][1]
            self.empty_ok = ns.empty_ok[tid]
        for s in self.raw:
            if s[0] is None:
                enc.append(s)
                continue
            width, prods = s
            table: dict[str, tuple] = {}
            ee = None
            for code, (kind, key, arg, nxt, _) in enumerate(prods):
                if kind == EE:
                    ee = code
                elif kind in (AT, SE, CH) or (kind == CH_UNTYPED and arg is not None):
                    table[key] = (code, kind, nxt)
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
        self.fixed_types = tuple(fixed_width_table(t) for t in mod.TYPES)
        self.empty_ok = tuple(allows_empty(t) for t in mod.TYPES)
        self.types: tuple = mod.TYPES
        self.grammars = tuple(Grammar(gid, *g) for gid, g in enumerate(mod.GRAMMARS))
        for g in self.grammars:
            g.link(self)
        # each grammar's decoder and encoder, written the first time it is used (most grammars never are)
        self.dec: list[Callable[[BitReader, int], Any]] = []
        self.enc: list[Callable[[BitWriter, Any, int], None]] = []
        for gid in range(len(self.grammars)):
            self.dec.append(self._first_use(gid, True))
            self.enc.append(self._first_use(gid, False))
        self.doc_width, docs = mod.DOCUMENT
        self.frag_width, frags = mod.FRAGMENT
        self.doc_elements = docs
        self.frag_elements = frags
        self.doc_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(docs)}
        self.frag_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(frags)}
        self.code_cache = specialize.CodeCache(key)  # the compiled code of its grammars' functions
        self.decoded = Memo()  # (fragment, bytes) -> the document's snapshot (unpickled for each caller)
        self.encoded = Memo()  # (fragment, the document's snapshot) -> bytes

    def _first_use(self, gid: int, decoder: bool) -> Callable[..., Any]:
        """A stand-in that writes grammar `gid`'s function, puts it in its place and calls it."""
        table = self.dec if decoder else self.enc

        def first(*args: Any) -> Any:
            fn = table[gid] = (specialize.build_decoder if decoder else specialize.build_encoder)(self, gid)
            return fn(*args)

        return first

    def specialize_all(self) -> None:
        """Write every grammar's functions now but those of relaxed fragment grammars (an element declared several
        times, never a message's part): what a serving process does at start, so that no message of its first
        sessions waits for its code to be written."""
        for gid, g in enumerate(self.grammars):
            if g.name.endswith(RELAXED):
                continue
            if getattr(self.dec[gid], "__name__", "") == "first":
                self.dec[gid] = specialize.build_decoder(self, gid)
            if getattr(self.enc[gid], "__name__", "") == "first":
                self.enc[gid] = specialize.build_encoder(self, gid)
        self.code_cache.save()

    # ------------------------------------------------------------------ decoding
    def decode(self, data: bytes, fragment: bool) -> dict[str, Any]:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ExiDecodeError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        if len(data) > MEMO_MAX_BYTES:
            return self._decode(data, fragment)
        key = (fragment, data)
        memo = self.decoded
        known = memo.entries.get(key)
        if known is not None:
            memo.hits += 1
            return pickle.loads(known)  # the caller may change its document; the remembered one stays as decoded
        doc = self._decode(data, fragment)
        memo.misses += 1
        with contextlib.suppress(*UNPICKLABLE):  # not expected of decoded values: then simply not remembered
            memo.put(key, snapshot(doc))
        return doc

    def _decode(self, data: bytes, fragment: bool) -> dict[str, Any]:
        start = 4 if data[:4] == b"$EXI" else 0
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
        value = self.dec[gid](r, qid)
        if fragment:
            end = r.bits(self.frag_width)
            if end != len(elements) + 1:
                raise ExiDecodeError("a fragment with more than one element is not supported", r.p)
        return {name: value}

    # ------------------------------------------------------------------ encoding
    def encode(self, doc: dict[str, Any], fragment: bool) -> bytes:
        if type(doc) is not dict:
            return self._encode(doc, fragment)
        try:
            key = (fragment, snapshot(doc))
        except UNPICKLABLE:  # a value that cannot be pickled, or nested too deeply: coded (or refused) the long way
            return self._encode(doc, fragment)
        memo = self.encoded
        data = memo.entries.get(key)
        if data is None:
            data = self._encode(doc, fragment)
            if len(data) <= MEMO_MAX_BYTES:
                memo.put(key, data)
            memo.misses += 1
        else:
            memo.hits += 1
        return data

    def _encode(self, doc: dict[str, Any], fragment: bool) -> bytes:
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
            self.enc[gid](w, value, qid)
        except ExiEncodeError as e:
            e.path.insert(0, name)
            raise
        except RecursionError:
            raise ExiEncodeError("document nested too deeply", [name]) from None
        if fragment:
            w.bits(self.frag_width, len(self.frag_elements) + 1)
        return w.getvalue()


_cache: dict[str, Namespace] = {}


def namespace(key: str) -> Namespace:
    ns = _cache.get(key)
    if ns is None:
        if key not in NAMESPACES:
            raise ValueError(f"unknown EXI namespace {key!r}; known: {', '.join(NAMESPACES)}")
        ns = _cache[key] = Namespace(key)
    return ns
