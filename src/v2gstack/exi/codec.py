"""Grammar-driven EXI encoder and decoder over the generated tables (one `Namespace` per schema).

A grammar state is `(width, prods)`; `prods[code]` is `(kind, key, arg, next, mode)`. A state of a
repeating particle is a selector `(None, min, max, below_min, middle, at_max)` resolved by the count n.

Both directions remember their recent small documents (`Memo`): a charge loop sends and receives nearly the same
message four times a second, and looking a document up costs a fraction of coding it again.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
from typing import Any

from .bitstream import BitReader, BitWriter
from .datatypes import allows_empty, compile_type, fixed_width_table
from .errors import ExiDecodeError, ExiEncodeError

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
SE_SIMPLE = 6  # SE of an element of simple type, fused at load time: arg = (codec function, qid)
SE_FIXED = 7  # the same for an n-bit type: CH code, value and EE code are one field of (bits + 2) bits
# An empty string or binary value has no CH event: EXIficient writes the element's EE as a second-level event
# (escape code, then EE = 0 among the StartTagContent's six second-level productions: 3 bits).
EMPTY_EE_BITS = 3
HEADER = 0x80  # distinguishing bits 10, no options, final version 1
NAMESPACES = ("appHand", "din", "iso2", "iso20", "iso20_ac", "iso20_dc", "iso20_wpt", "iso20_acdp", "xmldsig")


MEMO_ENTRIES = 512
"""Documents each Namespace remembers per direction (all forgotten when full: cheaper than ageing them); a full
-2 pair holds about 2.5 MB."""
MEMO_MAX_BYTES = 256
"""Only documents of at most this many EXI bytes are remembered (charge loops, not certificates or schedules)."""
SNAPSHOT_PROTOCOL = 5
"""The pickle protocol of the memo's snapshots (fixed: the same document must always snapshot alike)."""
UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)
FLAT_MEMO_ENTRIES = 512
"""Values remembered per grammar of simple children (PhysicalValue, RationalNumber, ...)."""
FLAT_DECODE_LENGTHS = 4
"""Lengths in bits a grammar of simple children remembers decoded elements of (each a look-up per element)."""


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
    """One element grammar: decode states as generated, plus per-state encode tables keyed by JSON key."""

    __slots__ = ("empty_ok", "enc", "flat", "flat_dec", "flat_lengths", "keys", "keyset", "list_keys", "name", "raw",
                 "simple_value", "states")

    def __init__(self, name: str, keys: tuple, list_keys: tuple, simple_value: bool, states: tuple) -> None:
        self.name = name
        self.keys = keys
        self.keyset = frozenset(keys)
        self.list_keys = frozenset(list_keys)
        self.simple_value = simple_value
        self.raw = states  # as generated; `states` and `enc` are the linked forms
        self.empty_ok = False  # a simple-typed element whose value may be empty (string or binary)
        self.states = states
        self.enc: tuple = ()
        self.flat: dict[tuple, tuple[int, int]] | None = None  # a grammar of simple children: items -> its bits
        # a grammar of simple children none of which is a string (no string table): (bits, their value) -> the
        # element as decoded; flat_lengths: the lengths in bits seen
        self.flat_dec: dict[tuple[int, int], dict[str, Any]] | None = None
        self.flat_lengths: list[int] = []

    def link(self, ns: Namespace) -> None:
        """Resolve productions for speed: SE of a simple-typed element becomes one fused SE_SIMPLE step."""
        dec_states: list[tuple] = []
        enc: list[tuple] = []
        strings = False  # a child or attribute of string type: its decoding reads and fills the string tables
        if self.simple_value:
            (_, _, (tid, _), _, _), = self.raw[0][1]
            self.empty_ok = ns.empty_ok[tid]
        for s in self.raw:
            if s[0] is None:
                dec_states.append(s)
                enc.append(s)
                continue
            width, prods = s
            fused = []
            table: dict[str, tuple] = {}
            ee = None
            for code, (kind, key, arg, nxt, mode) in enumerate(prods):
                dec_arg = enc_arg = arg
                if kind in (AT, CH, CH_UNTYPED) and arg is not None:
                    strings = strings or ns.string_types[arg[0]]
                if kind == SE and ns.grammars[arg[0]].simple_value:
                    (_, _, (tid, _), _, _), = ns.grammars[arg[0]].raw[0][1]
                    strings = strings or ns.string_types[tid]
                    fixed = ns.fixed_types[tid]
                    if fixed is not None:
                        bits, values, index, pytype = fixed
                        kind = SE_FIXED
                        dec_arg = (bits + 2, values)
                        enc_arg = (bits + 2, index, pytype, ns.enc_types[tid])
                    else:
                        kind = SE_SIMPLE
                        empty = ns.empty_ok[tid]
                        dec_arg = (ns.dec_types[tid], arg[1], empty)
                        enc_arg = (ns.enc_types[tid], arg[1], empty)
                elif kind in (AT, CH):
                    dec_arg = (ns.dec_types[arg[0]], arg[1], ns.empty_ok[arg[0]])
                    enc_arg = (ns.enc_types[arg[0]], arg[1], ns.empty_ok[arg[0]])
                elif kind == CH_UNTYPED and arg is not None:
                    # untyped character data of a relaxed fragment grammar: a string under "value"; an empty
                    # value has no CH at all (EE is a first-level production there), hence the None flag
                    kind = CH
                    dec_arg = (ns.dec_types[arg[0]], arg[1], None)
                    enc_arg = (ns.enc_types[arg[0]], arg[1], None)
                fused.append((kind, key, dec_arg, nxt, mode))
                if kind == EE:
                    ee = code
                elif kind in (AT, SE, CH, SE_SIMPLE, SE_FIXED):
                    table[key] = (code, kind, enc_arg, nxt, mode)
            dec_states.append((width, tuple(fused)))
            enc.append((width, table, ee))
        self.states = tuple(dec_states)
        self.enc = tuple(enc)
        if not self.simple_value and all(s[0] is None or all(p[0] != SE for p in s[1]) for s in self.states):
            self.flat = {}  # only simple children (PhysicalValue, RationalNumber, a status): remembered when encoded
            if not strings and not self.list_keys:
                self.flat_dec = {}  # and when decoded, unless a string value might be a string-table hit


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
        self.string_types = tuple(t[0] == "string" for t in mod.TYPES)
        self.grammars = tuple(Grammar(*g) for g in mod.GRAMMARS)
        for g in self.grammars:
            g.link(self)
        self.doc_width, docs = mod.DOCUMENT
        self.frag_width, frags = mod.FRAGMENT
        self.doc_elements = docs
        self.frag_elements = frags
        self.doc_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(docs)}
        self.frag_index = {name: (i, gid, qid) for i, (name, gid, qid) in enumerate(frags)}
        self.decoded = Memo()  # (fragment, bytes) -> the document's snapshot (unpickled for each caller)
        self.encoded = Memo()  # (fragment, the document's snapshot) -> bytes

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
        value = self._decode_element(r, self.grammars[gid], qid)
        if fragment:
            end = r.bits(self.frag_width)
            if end != len(elements) + 1:
                raise ExiDecodeError("a fragment with more than one element is not supported", r.p)
        return {name: value}

    def _decode_element(self, r: BitReader, g: Grammar, qid: int) -> Any:
        states = g.states
        list_keys = g.list_keys
        s = states[0]
        out: dict[str, Any] = {}
        value: Any = None
        n = 0
        stream, end = r.v, r.n  # constant while decoding; only the position r.p moves
        while True:
            if s[0] is None:
                _, lo, hi, below, middle, at_max = s
                s = states[below if n < lo else middle if hi is None or n < hi else at_max]
            width, prods = s
            p = r.p + width
            if p > end:
                raise ExiDecodeError("unexpected end of stream", r.p)
            r.p = p
            code = (stream >> (end - p)) & ((1 << width) - 1)
            if code >= len(prods):
                # the one second-level event we accept: EE of an empty simple value (string or binary)
                if code == len(prods) and prods[-1][0] == CH and prods[-1][2][2] and r.bits(EMPTY_EE_BITS) == 0:
                    if g.simple_value:
                        return ""
                    out["value"] = ""
                    return out
                if code == len(prods):
                    raise ExiDecodeError(
                        f"{g.name}: second-level event (schema deviation) is not supported", r.p)
                raise ExiDecodeError(f"{g.name}: invalid event code {code}", r.p)
            kind, key, arg, nxt, mode = prods[code]
            if kind >= SE_SIMPLE or kind == SE:
                if kind == SE_FIXED:
                    fw = arg[0]
                    p += fw
                    if p > end:
                        raise ExiDecodeError("unexpected end of stream", r.p)
                    r.p = p
                    x = (stream >> (end - p)) & ((1 << fw) - 1)
                    if x & 1 or x >> (fw - 1):
                        raise ExiDecodeError(f"{key}: second-level event (schema deviation) is not supported", p)
                    try:
                        v = arg[1][x >> 1]
                    except IndexError:
                        raise ExiDecodeError(f"{key}: value index {x >> 1} out of range", p) from None
                elif kind == SE:
                    sub = self.grammars[arg[0]]
                    if sub.flat_dec is not None:
                        v = self._decode_flat(r, sub, arg[1], sub.flat_dec)
                    else:
                        v = self._decode_element(r, sub, arg[1])
                elif r.bits(1):  # escape: the only second-level event we accept is EE of an empty value
                    if r.bits(EMPTY_EE_BITS) or not arg[2]:
                        raise ExiDecodeError(f"{key}: second-level event (schema deviation) is not supported", r.p)
                    v = ""
                else:
                    v = arg[0](r, arg[1])
                    if r.bits(1):
                        raise ExiDecodeError(f"{key}: second-level event (schema deviation) is not supported", r.p)
                if key in list_keys:
                    if key in out:
                        out[key].append(v)
                    else:
                        out[key] = [v]
                else:
                    out[key] = v
                n = n + 1 if mode else 1
            elif kind == AT:
                out[key] = arg[0](r, arg[1])
            elif kind == CH:
                value = arg[0](r, qid)
                if g.simple_value:
                    s = states[nxt]
                    continue
                out["value"] = value
            elif kind == EE:
                return value if g.simple_value else out
            else:
                raise ExiDecodeError(f"{g.name}: wildcard, mixed or relaxed child content is not supported", r.p)
            s = states[nxt]

    def _decode_flat(self, r: BitReader, g: Grammar, qid: int, memo: dict[tuple[int, int], dict[str, Any]]) -> Any:
        """An element of simple children, none a string, from the grammar's memo when its next bits were decoded
        before: decoding reads the bits in order and depends on nothing else, so bits that once made up exactly one
        such element make it again (at most one of the lengths seen can match). Each caller gets its own dict."""
        stream, end, p = r.v, r.n, r.p
        for length in g.flat_lengths:
            if p + length <= end:
                known = memo.get((length, (stream >> (end - p - length)) & ((1 << length) - 1)))
                if known is not None:
                    r.p = p + length
                    return known.copy()
        v = self._decode_element(r, g, qid)
        length = r.p - p
        if len(memo) >= FLAT_MEMO_ENTRIES:
            memo.clear()
            g.flat_lengths.clear()
        if length not in g.flat_lengths:
            if len(g.flat_lengths) >= FLAT_DECODE_LENGTHS:
                return v
            g.flat_lengths.append(length)
        memo[(length, (stream >> (end - p - length)) & ((1 << length) - 1))] = v.copy()
        return v

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
            if v == "" and g.empty_ok:
                w.bits(width + EMPTY_EE_BITS, (code + 1) << EMPTY_EE_BITS)  # escape, then EE
                return
            w.bits(width, code)
            arg[0](w, v, qid)
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
        index = -1
        try:
            for key in g.keys:
                if key not in v:
                    continue
                x = v[key]
                index = -1
                if key in g.list_keys:
                    if not isinstance(x, list):
                        raise ExiEncodeError(f"expected a list (the element may occur more than once), "
                                             f"got {type(x).__name__}")
                    items = x
                else:
                    items = (x,)
                for index, item in enumerate(items):  # noqa: B007 (index names the item in error paths)
                    if s[0] is None:
                        _, lo, hi, below, middle, at_max = s
                        s = states[below if n < lo else middle if hi is None or n < hi else at_max]
                    width, table, _ = s
                    t = table.get(key)
                    if t is None:
                        raise ExiEncodeError(self._unexpected(g, s, key, n))
                    code, kind, arg, nxt, mode = t
                    if kind == SE_FIXED:
                        raw = arg[1].get(item) if type(item) is arg[2] else None
                        if raw is None:
                            arg[3](w, item, 0)  # raises the datatype's own, precise error
                            raise ExiEncodeError(f"invalid value {item!r}")
                        w.acc = (w.acc << (width + arg[0])) | (code << arg[0]) | (raw << 1)
                        n = n + 1 if mode else 1
                    elif kind == SE_SIMPLE:
                        if item == "" and arg[2]:
                            w.acc = (w.acc << (width + 1 + EMPTY_EE_BITS)) | (((code << 1) | 1) << EMPTY_EE_BITS)
                            n = n + 1 if mode else 1
                            s = states[nxt]
                            continue
                        w.acc = (w.acc << (width + 1)) | (code << 1)  # the element's event code, then CH (0)
                        arg[0](w, item, arg[1])
                        w.acc <<= 1  # EE (code 0)
                        n = n + 1 if mode else 1
                    elif kind == SE:
                        w.acc = (w.acc << width) | code
                        sub = self.grammars[arg[0]]
                        memo = sub.flat
                        if memo is not None and type(item) is dict:
                            self._encode_flat(w, sub, arg[1], item, memo)
                        else:
                            self._encode_element(w, sub, arg[1], item)
                        n = n + 1 if mode else 1
                    elif kind == CH and item == "" and arg[2] is None:
                        continue
                    elif kind == CH and item == "" and arg[2]:
                        w.acc = (w.acc << (width + EMPTY_EE_BITS)) | ((code + 1) << EMPTY_EE_BITS)  # escape, EE
                        return
                    else:
                        w.acc = (w.acc << width) | code
                        arg[0](w, item, qid if kind == CH else arg[1])
                    s = states[nxt]
            key = ""
            if s[0] is None:
                _, lo, hi, below, middle, at_max = s
                s = states[below if n < lo else middle if hi is None or n < hi else at_max]
            width, table, ee = s
            if ee is None:
                raise ExiEncodeError(f"required field missing: expected one of {sorted(table)}")
            w.acc = (w.acc << width) | ee
        except ExiEncodeError as e:
            if key:
                e.path.insert(0, f"{key}[{index}]" if key in g.list_keys and index >= 0 else key)
            raise

    def _encode_flat(self, w: BitWriter, g: Grammar, qid: int, item: dict[str, Any],
                     memo: dict[tuple, tuple[int, int]]) -> None:
        """An element of simple children, from the grammar's memo when the same values (of the same types, in the
        same order) were coded before: its bits depend on nothing else (string values are always literals)."""
        try:
            key = tuple([(k, x, type(x)) for k, x in item.items()])
            known = memo.get(key)
        except TypeError:  # an unhashable value: coded (and refused) the long way
            self._encode_element(w, g, qid, item)
            return
        if known is None:
            sub = BitWriter()
            self._encode_element(sub, g, qid, item)
            nbits = sub.acc.bit_length() - 1
            known = (nbits, sub.acc ^ (1 << nbits))
            if len(memo) >= FLAT_MEMO_ENTRIES:
                memo.clear()
            memo[key] = known
        w.acc = (w.acc << known[0]) | known[1]

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
