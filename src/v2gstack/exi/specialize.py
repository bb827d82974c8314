"""Turn one grammar of the generated tables into a decoder and an encoder written as straight Python code.

Walking the tables costs a tuple unpack and a dispatch on the production's kind per event; a grammar's own function
reads its event codes in the order the states come, with the widths, codes, keys and value tables as constants, and
the common datatypes (bounded integers, enumerations, booleans, small unsigned and signed integers, ASCII strings)
read or written in place. The tables stay the one source: this module writes the code from them, the first time a
grammar is used (`codec.Namespace`), and the source of any grammar can be printed (`source`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import marshal
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from .datatypes import show_int
from .errors import ExiDecodeError, ExiEncodeError

if TYPE_CHECKING:
    from .codec import Grammar, Namespace

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
EMPTY_EE_BITS = 3
MISSING = object()
WIDE_KEYS = 12
"""A grammar of more fields than this, all optional complex children, is encoded by looking up the present ones."""


def bad_event(r: Any, p: int, code: int, name: str, count: int, empty_ch: bool) -> bool:
    """An event code outside the state's productions: True for the one second-level event accepted (EE of an
    empty string or binary value after the state's CH), else the decode error."""
    r.p = p
    if code == count and empty_ch and r.bits(EMPTY_EE_BITS) == 0:
        return True
    if code == count:
        raise ExiDecodeError(f"{name}: second-level event (schema deviation) is not supported", r.p)
    raise ExiDecodeError(f"{name}: invalid event code {code}", r.p)


def escaped_value(r: Any, p: int, key: str, empty: bool) -> str:
    """The escape after a simple-typed element's start: only EE of an empty value (string or binary) is accepted."""
    r.p = p
    if r.bits(EMPTY_EE_BITS) or not empty:
        raise ExiDecodeError(f"{key}: second-level event (schema deviation) is not supported", r.p)
    return ""


def unexpected(g: Grammar, state: int, key: str, n: int) -> ExiEncodeError:
    """The encode error for a field the grammar's state has no production for."""
    allowed = sorted(g.enc[state][1])
    if key in allowed:
        return ExiEncodeError(f"{key!r} is not allowed here")
    if n and key in g.list_keys:
        return ExiEncodeError(f"too many occurrences of {key!r}")
    return ExiEncodeError(f"{key!r} is not allowed at this point (a required field before it is missing, or a "
                          f"choice was already made); expected one of {allowed}")


@dataclass
class _Writer:
    """Lines of one function and the constants they name."""

    lines: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    names: itertools.count = field(default_factory=itertools.count)
    named: dict[int, str] = field(default_factory=dict)

    def const(self, value: Any, prefix: str = "k") -> str:
        """A name for `value` in the function's globals (one per object)."""
        name = self.named.get(id(value))
        if name is None:
            name = self.named[id(value)] = f"{prefix}{next(self.names)}"
            self.env[name] = value
        return name

    def add(self, depth: int, *lines: str) -> None:
        self.lines.extend("    " * depth + line for line in lines)


def _resolve(g: Grammar, nxt: int) -> str:
    """The state after a transition to `nxt` as an expression: a repeating particle's selector resolved by `cnt`."""
    s = g.raw[nxt] if nxt >= 0 else None
    if s is None or s[0] is not None:
        return str(nxt)
    _, lo, hi, below, middle, at_max = s
    upper = str(middle) if hi is None else f"({middle} if cnt < {hi} else {at_max})"
    if below is None:
        return upper
    return f"({below} if cnt < {lo} else {upper})"


def _targets(g: Grammar, nxt: int) -> set[int]:
    s = g.raw[nxt] if nxt >= 0 else None
    if s is None:
        return set()
    if s[0] is not None:
        return {nxt}
    _, _, _, below, middle, at_max = s
    return {x for x in (below, middle, at_max) if x is not None}


def _forward_only(g: Grammar) -> bool:
    return all(s[0] is not None and all(p[3] == -1 or p[3] > k for p in s[1]) for k, s in enumerate(g.raw))


def _has_selectors(g: Grammar) -> bool:
    return any(s[0] is None for s in g.raw)


def _leaf(ns: Namespace, g: Grammar) -> bool:
    """A grammar of simple-typed children only, in a fixed order (PhysicalValue, RationalNumber, a status): its
    code is written into its parent's rather than called."""
    return (not g.simple_value and not g.list_keys and _forward_only(g)
            and all(p[0] == EE or (p[0] == SE and ns.grammars[p[2][0]].simple_value) for s in g.raw for p in s[1]))


def _inlined(ns: Namespace, g: Grammar, key: str, fr: _Frame) -> bool:
    """Whether child `key` of `g` is coded in place (a leaf child of a grammar that is not itself inlined)."""
    if fr.inline:
        return False
    starts = [p for s in g.raw if s[0] is not None for p in s[1] if p[0] == SE and p[1] == key]
    return bool(starts) and _leaf(ns, ns.grammars[starts[0][2][0]])


def _hoisted(g: Grammar) -> dict[str, int]:
    """Decoding a forward-only grammar: the children several states can start, all into the same next state, whose
    content is written once, before that state's code, rather than once per starting state. key -> next state."""
    starts: dict[str, set[int]] = {}
    origins: dict[str, int] = {}
    for s in g.raw:
        for p in s[1]:
            if p[0] == SE:
                starts.setdefault(p[1], set()).add(p[3])
                origins[p[1]] = origins.get(p[1], 0) + 1
    return {key: next(iter(t)) for key, t in starts.items() if len(t) == 1 and origins[key] > 1}


@dataclass
class _Frame:
    """The local names one grammar's code uses: its own function's, or an inlined child's (suffixed)."""

    out: str = "out"
    s: str = "s"
    x: str = "x"
    it: str = "it"
    key: str = "key"
    inline: bool = False
    pend: str = "pend"
    hoisted: dict[str, int] = field(default_factory=dict)  # decoding: key -> the state its content precedes

    @staticmethod
    def child(depth: int) -> _Frame:
        return _Frame(f"o{depth}", f"s{depth}", f"x{depth}", f"it{depth}", f"k{depth}", True, f"pend{depth}")


# ---------------------------------------------------------------------------------------------------- decoding
def _read(w: _Writer, d: int, width: int, var: str) -> None:
    w.add(d, f"p += {width}", f"if p > n: raise Err('unexpected end of stream', p - {width})",
          f"{var} = (v >> (n - p)) & {(1 << width) - 1}")


def _dec_uint(w: _Writer, d: int, var: str) -> None:
    """An Unsigned Integer into `var`: one or two 7-bit groups read in place (nearly every value), else by the
    reader."""
    w.add(d, "q = p + 16",
          f"if q <= n and not ({var} := (v >> (n - q)) & 65535) & 32768: p = q - 8; {var} >>= 8",
          f"elif q <= n and not {var} & 128: p = q; {var} = (({var} >> 8) & 127) | ({var} << 7 & 16256)",
          f"else: r.p = p; {var} = r.uint(); p = r.p")


def _dec_value(w: _Writer, d: int, ns: Namespace, tid: int, qid: str, var: str) -> None:
    """Decode a value of type `tid` into `var` (the element's CH value; `qid` an expression)."""
    dt = ns.types[tid]
    if dt[0] in ("uint", "int"):
        _, lo, hi = dt
        if dt[0] == "int":
            _read(w, d, 1, "neg")
        _dec_uint(w, d, var)
        if dt[0] == "int":
            w.add(d, f"if neg: {var} = -{var} - 1")
        checks = ([f"{var} < {lo}"] if lo is not None and not (dt[0] == "uint" and lo <= 0) else []) + \
            ([f"{var} > {hi}"] if hi is not None else [])
        if checks:
            w.add(d, f"if {' or '.join(checks)}: "
                     f"raise Err(f'integer {{show_int({var})}} out of range [{lo}, {hi}]', p)")
        return
    if dt[0] == "string":
        w.add(d, f"r.p = p; {var} = r.string({qid}); p = r.p")
        return
    fn = w.const(ns.dec_types[tid], "t")
    w.add(d, f"r.p = p; {var} = {fn}(r, {qid}); p = r.p")


def _dec_store(w: _Writer, d: int, g: Grammar, fr: _Frame, key: str, var: str) -> None:
    if key in g.list_keys:
        w.add(d, f"lst = {fr.out}.get({key!r})", f"if lst is None: {fr.out}[{key!r}] = [{var}]",
              f"else: lst.append({var})")
    else:
        w.add(d, f"{fr.out}[{key!r}] = {var}")


def _dec_content(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, prod: tuple, counted: bool) -> None:
    """A child element's content (after its event code), stored under its key."""
    _, key, arg, _, mode = prod
    sub = ns.grammars[arg[0]]
    fixed = ns.fixed_types[sub.raw[0][1][0][2][0]] if sub.simple_value else None
    if sub.simple_value and fixed is not None:
        bits, values, _, _ = fixed
        fw = bits + 2
        vals = w.const(values, "vals")
        _read(w, d, fw, "x")
        w.add(d, f"if x & 1 or x >> {fw - 1}: "
                 f"raise Err({key + ': second-level event (schema deviation) is not supported'!r}, p)",
              "x >>= 1",
              f"if x >= {len(values)}: raise Err({key + ': value index '!r} + str(x) + ' out of range', p)",
              f"val = {vals}[x]")
    elif sub.simple_value:
        tid = sub.raw[0][1][0][2][0]
        _read(w, d, 1, "x")
        w.add(d, f"if x: val = escaped(r, p, {key!r}, {ns.empty_ok[tid]!r}); p = r.p", "else:")
        _dec_value(w, d + 1, ns, tid, str(arg[1]), "val")
        _read(w, d + 1, 1, "x")
        w.add(d + 1, f"if x: raise Err({key + ': second-level event (schema deviation) is not supported'!r}, p)")
    elif _inlined(ns, g, key, fr):
        child = _Frame.child(1)
        w.add(d, f"{child.out} = {{}}")
        _dec_states(w, d, ns, sub, child)
        w.add(d, f"val = {child.out}")
    else:
        w.add(d, f"r.p = p; val = dec[{arg[0]}](r, {arg[1]}); p = r.p")
    _dec_store(w, d, g, fr, key, "val")
    if counted:
        w.add(d, "cnt += 1" if mode else "cnt = 1")


def _dec_prod(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, prod: tuple, counted: bool) -> None:
    """One production's content after its event code; ends with the transition (or the return at EE)."""
    kind, key, arg, nxt, _ = prod
    simple = g.simple_value
    if kind == SE and key in fr.hoisted:
        w.add(d, f"{fr.pend} = {key!r}")
    elif kind == SE:
        _dec_content(w, d, ns, g, fr, prod, counted)
    elif kind == AT:
        _dec_value(w, d, ns, arg[0], str(arg[1]), "val")
        w.add(d, f"{fr.out}[{key!r}] = val")
    elif kind == CH or (kind == CH_UNTYPED and arg is not None):
        _dec_value(w, d, ns, arg[0], "qid", "value")
        if not simple:
            w.add(d, f"{fr.out}['value'] = value")
    elif kind == EE:
        if fr.inline:
            w.add(d, f"{fr.s} = -1")
        else:
            w.add(d, "r.p = p", "return value" if simple else f"return {fr.out}")
        return
    else:
        w.add(d, f"r.p = p; raise Err({g.name + ': wildcard, mixed or relaxed child content is not supported'!r}, p)")
        return
    w.add(d, f"{fr.s} = {_resolve(g, nxt)}")


def _dec_state(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, k: int, counted: bool) -> None:
    width, prods = g.raw[k]
    _read(w, d, width, "c")
    last = prods[-1]
    empty_ch = bool(last[0] == CH and ns.empty_ok[last[2][0]])
    w.add(d, f"if c >= {len(prods)}:")
    w.add(d + 1, f"bad(r, p, c, {g.name!r}, {len(prods)}, {empty_ch!r})")
    if g.simple_value:
        w.add(d + 1, "return ''")
    elif not fr.inline:  # an inlined grammar has no character content: `bad` raised
        w.add(d + 1, f"{fr.out}['value'] = ''", f"return {fr.out}")
    _dec_branches(w, d, ns, g, fr, prods, 0, len(prods), counted)


def _dec_branches(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, prods: tuple, lo: int, hi: int,
                  counted: bool) -> None:
    """The productions lo..hi-1 chosen by the event code `c` (known to be among them): a chain of a few tests, or
    a halving test first where there are many (a Body's dozens of messages)."""
    if hi - lo > 4:
        mid = (lo + hi) // 2
        w.add(d, f"if c < {mid}:")
        _dec_branches(w, d + 1, ns, g, fr, prods, lo, mid, counted)
        w.add(d, "else:")
        _dec_branches(w, d + 1, ns, g, fr, prods, mid, hi, counted)
        return
    for code in range(lo, hi):
        if hi - lo > 1:
            w.add(d, ("if" if code == lo else "elif") + f" c == {code}:" if code < hi - 1 else "else:")
        _dec_prod(w, d + (hi - lo > 1), ns, g, fr, prods[code], counted)


def _dec_states(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame) -> None:
    """All of `g`'s states: in order, each tested only where more than one can be current, for a grammar whose
    transitions all go forward; else a loop over the current state (repeating particles)."""
    counted = _has_selectors(g)
    w.add(d, f"{fr.s} = {_resolve(g, 0)}")
    if counted:
        w.add(d, "cnt = 0")
    if _forward_only(g):
        fr.hoisted = _hoisted(g)
        if fr.hoisted:
            w.add(d, f"{fr.pend} = None")
        possible = _targets(g, 0)
        for k in range(len(g.raw)):
            first = True
            for key, t in fr.hoisted.items():
                if t == k:
                    prod = next(p for st in g.raw for p in st[1] if p[0] == SE and p[1] == key)
                    w.add(d, f"{'if' if first else 'elif'} {fr.pend} == {key!r}:")
                    _dec_content(w, d + 1, ns, g, fr, prod, False)
                    first = False
            if k not in possible:
                continue
            guarded = possible != {k}
            if guarded:
                w.add(d, f"if {fr.s} == {k}:")
            _dec_state(w, d + guarded, ns, g, fr, k, counted)
            possible.discard(k)
            for prod in g.raw[k][1]:
                possible |= _targets(g, prod[3]) if prod[0] != EE or not fr.inline else {-1}
        possible.discard(-1)
        if possible:
            w.add(d, f"raise AssertionError({fr.s})")
        return
    w.add(d, "while True:")
    first = True
    for k, s in enumerate(g.raw):
        if s[0] is None:
            continue
        w.add(d + 1, f"{'if' if first else 'elif'} {fr.s} == {k}:")
        first = False
        _dec_state(w, d + 2, ns, g, fr, k, counted)
    w.add(d + 1, f"else: raise AssertionError({fr.s})")


def decoder_source(ns: Namespace, g: Grammar) -> tuple[str, dict[str, Any]]:
    """The source of `g`'s decoder `decode(r, qid)` and the constants it names."""
    w = _Writer()
    w.add(0, "def decode(r, qid):", "    v = r.v; n = r.n; p = r.p")
    w.add(1, "out = {}" if not g.simple_value else "value = None")
    if any(p[0] == CH for s in g.raw if s[0] is not None for p in s[1]) and not g.simple_value:
        w.add(1, "value = None")
    _dec_states(w, 1, ns, g, _Frame())
    return "\n".join(w.lines), w.env


# ---------------------------------------------------------------------------------------------------- encoding
def _enc_value(w: _Writer, d: int, ns: Namespace, tid: int, qid: str, var: str) -> None:
    """Encode `var` as a value of type `tid` into `acc` (the generic datatype encoder checks and refuses)."""
    dt = ns.types[tid]
    fn = w.const(ns.enc_types[tid], "t")
    generic = f"else: w.acc = acc; {fn}(w, {var}, {qid}); acc = w.acc"
    if dt[0] in ("uint", "int"):
        _, lo, hi = dt
        small_lo = max(0 if dt[0] == "uint" else -128, lo if lo is not None else -(1 << 64))
        small_hi = min(127, hi if hi is not None else 127)
        if small_lo <= small_hi:
            if dt[0] == "uint":
                w.add(d, f"if type({var}) is int and {small_lo} <= {var} <= {small_hi}: acc = (acc << 8) | {var}")
            else:
                w.add(d, f"if type({var}) is int and {small_lo} <= {var} <= {small_hi}: "
                         f"acc = (acc << 9) | ({var} if {var} >= 0 else 256 | (-{var} - 1))")
            big_lo = max(0 if dt[0] == "uint" else -16384, lo if lo is not None else -(1 << 64))
            big_hi = min(16383, hi if hi is not None else 16383)
            if big_hi > small_hi or big_lo < small_lo:  # two 7-bit groups: low group first, continuation bit set
                if dt[0] == "uint":
                    w.add(d, f"elif type({var}) is int and {big_lo} <= {var} <= {big_hi}: "
                             f"acc = (acc << 16) | ({var} & 127) << 8 | 32768 | {var} >> 7")
                else:
                    w.add(d, f"elif type({var}) is int and {big_lo} <= {var} <= {big_hi}: "
                             f"u = {var} if {var} >= 0 else -{var} - 1; "
                             f"acc = (acc << 17) | ({var} < 0) << 16 | (u & 127) << 8 | 32768 | u >> 7")
            w.add(d, generic)
        else:
            w.add(d, f"w.acc = acc; {fn}(w, {var}, {qid}); acc = w.acc")
        return
    if dt[0] == "string":
        _, length, lo, hi = dt
        cond = [f"type({var}) is str", f"{var}.isascii()"]
        if length is not None:
            cond.append(f"len({var}) == {length}")
        if lo is not None:
            cond.append(f"len({var}) >= {lo}")
        cond.append(f"len({var}) <= {125 if hi is None else min(hi, 125)}")
        w.add(d, f"if {' and '.join(cond)}:",
              f"    acc = (acc << 8) | (len({var}) + 2)",
              f"    if {var}: acc = (acc << (8 * len({var}))) | int.from_bytes({var}.encode('ascii'), 'big')",
              generic)
        return
    w.add(d, f"w.acc = acc; {fn}(w, {var}, {qid}); acc = w.acc")


def _enc_content(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, prod: tuple, counted: bool) -> None:
    """A child element's content from `it`, after its event code was written."""
    _, key, arg, _, mode = prod
    it = fr.it
    sub = ns.grammars[arg[0]]
    tid = sub.raw[0][1][0][2][0] if sub.simple_value else None
    fixed = ns.fixed_types[tid] if tid is not None else None
    if fixed is not None:
        bits, _, index, pytype = fixed
        fw = bits + 2
        idx = w.const(index, "idx")
        ty = w.const(pytype, "ty")
        fn = w.const(ns.enc_types[tid], "t")
        w.add(d, f"raw = {idx}.get({it}) if type({it}) is {ty} else None",
              f"if raw is None: {fn}(w, {it}, 0); raise EncErr('invalid value ' + repr({it}))",
              f"acc = (acc << {fw}) | (raw << 1)")
    elif tid is not None:
        if ns.empty_ok[tid]:
            w.add(d, f"if {it} == '': acc = (acc << {1 + EMPTY_EE_BITS}) | {1 << EMPTY_EE_BITS}", "else:")
            d += 1
        w.add(d, "acc <<= 1")
        _enc_value(w, d, ns, tid, str(arg[1]), it)
        w.add(d, "acc <<= 1")
        if ns.empty_ok[tid]:
            d -= 1
    elif _inlined(ns, g, key, fr):
        _enc_body(w, d, ns, sub, _Frame.child(1), it)
    else:
        w.add(d, "w.acc = acc", f"enc[{arg[0]}](w, {it}, {arg[1]})", "acc = w.acc")
    if counted:
        w.add(d, "cnt += 1" if mode else "cnt = 1")


def _enc_prod(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, state: int, key: str,
              counted: bool) -> None:
    """Write the event code of `key` in `state` and its content from `it`, then the transition."""
    width, prods = g.raw[state]
    code = g.enc[state][1][key][0]
    kind, _, arg, nxt, _ = prods[code]
    it = fr.it
    if kind == SE:
        w.add(d, f"acc = (acc << {width}) | {code}")
        _enc_content(w, d, ns, g, fr, prods[code], counted)
    elif kind == AT:
        w.add(d, f"acc = (acc << {width}) | {code}")
        _enc_value(w, d, ns, arg[0], str(arg[1]), it)
    else:  # CH (typed, or a relaxed grammar's untyped character data as a string)
        empty = None if kind == CH_UNTYPED else ns.empty_ok[arg[0]]
        if empty is None:
            w.add(d, f"if {it} == '': pass", "else:")
        elif empty:
            w.add(d, f"if {it} == '':",
                  f"    w.acc = (acc << {width + EMPTY_EE_BITS}) | {(code + 1) << EMPTY_EE_BITS}", "    return",
                  "else:")
        else:
            w.add(d, "if True:")
        w.add(d + 1, f"acc = (acc << {width}) | {code}")
        _enc_value(w, d + 1, ns, arg[0], "qid", it)
        w.add(d + 1, f"{fr.s} = {_resolve(g, nxt)}")
        return
    w.add(d, f"{fr.s} = {_resolve(g, nxt)}")


def _accepting(g: Grammar, states: set[int], key: str) -> list[int]:
    return sorted((k for k in states if key in g.enc[k][1]), reverse=True)


def _enc_dispatch(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, states: set[int], key: str,
                  counted: bool) -> None:
    """Encode `it` as `key` from whichever of `states` the encoder is in; an error from any state without it."""
    accepting = _accepting(g, states, key)
    gv = w.const(g, "g")
    fail = f"raise unexpected({gv}, {fr.s}, {key!r}, {'cnt' if counted else 0})"
    if not accepting:
        w.add(d, fail)
        return
    if states == {accepting[0]}:
        _enc_prod(w, d, ns, g, fr, accepting[0], key, counted)
        return
    prods = [g.raw[k][1][g.enc[k][1][key][0]] for k in accepting]
    if all(p[0] == SE and p[2:] == prods[0][2:] for p in prods):  # the same child, next state and count: the
        for i, k in enumerate(accepting):  # event code by state, then the content once
            w.add(d, f"{'if' if i == 0 else 'elif'} {fr.s} == {k}: acc = (acc << {g.raw[k][0]}) | "
                     f"{g.enc[k][1][key][0]}")
        w.add(d, f"else: {fail}")
        _enc_content(w, d, ns, g, fr, prods[0], counted)
        w.add(d, f"{fr.s} = {_resolve(g, prods[0][3])}")
        return
    for i, k in enumerate(accepting):
        w.add(d, f"{'if' if i == 0 else 'elif'} {fr.s} == {k}:")
        _enc_prod(w, d + 1, ns, g, fr, k, key, counted)
    w.add(d, f"else: {fail}")


def _after(g: Grammar, states: set[int], key: str) -> set[int]:
    out = set(states)
    for k in states:
        t = g.enc[k][1].get(key)
        if t is not None:
            out |= _targets(g, t[2])
    return out


def _enc_wide(w: _Writer, d: int, ns: Namespace, g: Grammar) -> None:
    """The fields of a grammar of many optional complex children (a Body's choice of message), few of which are
    present: the present ones in schema order, each looked up by (state, key), rather than a test per field."""
    table = {}
    for k, st in enumerate(g.raw):
        for key, (code, _, nxt) in g.enc[k][1].items():
            gid, qid = st[1][code][2]
            table[(k, key)] = (st[0], code, gid, qid, nxt)
    order = w.const({key: i for i, key in enumerate(g.keys)}, "order")
    tab = w.const(table, "tab")
    gv = w.const(g, "g")
    w.add(d, f"for key in (x if len(x) < 2 else sorted(x, key={order}.__getitem__)):",
          "    it = x[key]",
          f"    t = {tab}.get((s, key))",
          f"    if t is None: raise unexpected({gv}, s, key, 0)",
          "    width, code, gid, sub_qid, s = t",
          "    w.acc = (acc << width) | code",
          "    enc[gid](w, it, sub_qid)",
          "    acc = w.acc")


def _enc_body(w: _Writer, d: int, ns: Namespace, g: Grammar, fr: _Frame, value: str) -> None:
    """Encode the complex element `value` of grammar `g` into `acc`, ending with its EE (a function's body, or
    inlined into its parent's with the child frame's names)."""
    gv = w.const(g, "g")
    counted = _has_selectors(g)
    keyset = w.const(g.keyset, "keys")
    x = fr.x
    if value != x:
        w.add(d, f"{x} = {value}")
    wide = len(g.keys) > WIDE_KEYS and not counted and not g.list_keys and not fr.inline and all(
        p[0] == EE or (p[0] == SE and not ns.grammars[p[2][0]].simple_value) for s in g.raw for p in s[1])
    w.add(d, f"if not isinstance({x}, dict):",
          f"    raise EncErr({'expected an object for ' + g.name + ', got '!r} + type({x}).__name__)",
          f"if not {keyset}.issuperset({x}):",
          f"    raise EncErr('unknown field(s) ' + str(sorted(set({x}) - {keyset})) + "
          f"{'; ' + g.name + ' allows ' + str(list(g.keys))!r})",
          f"{fr.s} = {_resolve(g, 0)}", f"{fr.key} = ''")
    if g.list_keys:
        w.add(d, "index = -1")
    if counted:
        w.add(d, "cnt = 0")
    w.add(d, "try:")
    states = {0} if g.raw[0][0] is not None else _targets(g, 0)
    if wide:
        _enc_wide(w, d + 1, ns, g)
        states = set(range(len(g.raw)))
    for key in () if wide else g.keys:
        w.add(d + 1, f"{fr.it} = {x}.get({key!r}, MISSING)", f"if {fr.it} is not MISSING:",
              f"    {fr.key} = {key!r}")
        if key in g.list_keys:
            w.add(d + 2, "index = -1", f"if not isinstance({fr.it}, list):",
                  "    raise EncErr('expected a list (the element may occur more than once), got ' + "
                  f"type({fr.it}).__name__)",
                  f"for index, {fr.it} in enumerate({fr.it}):")
            loop = set(states)
            while True:
                grown = _after(g, loop, key)
                if grown == loop:
                    break
                loop = grown
            _enc_dispatch(w, d + 3, ns, g, fr, loop, key, counted)
            states = loop
        else:
            _enc_dispatch(w, d + 2, ns, g, fr, states, key, counted)
            states = _after(g, states, key)
    w.add(d + 1, f"{fr.key} = ''")
    ending = sorted((k for k in states if g.enc[k][2] is not None), reverse=True)
    fail = f"raise EncErr('required field missing: expected one of ' + str(sorted({gv}.enc[{fr.s}][1])))"
    if states == set(ending) and len(ending) == 1:
        k = ending[0]
        w.add(d + 1, f"acc = (acc << {g.enc[k][0]}) | {g.enc[k][2]}")
    else:
        for i, k in enumerate(ending):
            w.add(d + 1, f"{'if' if i == 0 else 'elif'} {fr.s} == {k}: acc = (acc << {g.enc[k][0]}) | {g.enc[k][2]}")
        w.add(d + 1, f"else: {fail}" if ending else fail)
    where = f"f'{{{fr.key}}}[{{index}}]' if {fr.key} in {gv}.list_keys and index >= 0 else {fr.key}" \
        if g.list_keys else fr.key
    w.add(d, "except EncErr as e:", f"    if {fr.key}: e.path.insert(0, {where})", "    raise")


def encoder_source(ns: Namespace, g: Grammar) -> tuple[str, dict[str, Any]]:
    """The source of `g`'s encoder `encode(w, x, qid)` (appending to the BitWriter `w`) and its constants."""
    w = _Writer()
    w.add(0, "def encode(w, x, qid):")
    if g.simple_value:
        width, table, _ = g.enc[0]
        code, _, nxt = table["value"]
        tid = g.raw[0][1][0][2][0]
        if g.empty_ok:
            w.add(1, "if x == '':", f"    w.acc = (w.acc << {width + EMPTY_EE_BITS}) | {(code + 1) << EMPTY_EE_BITS}",
                  "    return")
        w.add(1, f"acc = (w.acc << {width}) | {code}")
        _enc_value(w, 1, ns, tid, "qid", "x")
        ee_width, _, ee = g.enc[nxt]
        w.add(1, f"w.acc = (acc << {ee_width}) | {ee}")
        return "\n".join(w.lines), w.env
    w.add(1, "acc = w.acc")
    _enc_body(w, 1, ns, g, _Frame(), "x")
    w.add(1, "w.acc = acc")
    return "\n".join(w.lines), w.env


# ---------------------------------------------------------------------------------------------------- building
class CodeCache:
    """Compiled functions of one namespace kept beside the generated grammar modules, as Python keeps its .pyc
    files (in the package's __pycache__, under this interpreter's cache tag): compiling is most of the cost of
    writing a namespace's code at start (a few hundred ms), looking the code up by its source's digest is not. An
    unreadable or foreign file is ignored; an unwritable folder only means compiling at every start. A function's code
    is found by the digest of its file name and source."""

    def __init__(self, key: str, folder: Path | None = None) -> None:
        folder = folder or Path(__file__).parent / "generated" / "__pycache__"
        self.path = folder / f"specialized-{key}.{sys.implementation.cache_tag}.marshal"
        self.codes: dict[str, CodeType] = {}
        self.used: set[str] = set()
        self.dirty = False
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            loaded = marshal.loads(self.path.read_bytes())
            if isinstance(loaded, dict):
                self.codes = {k: c for k, c in loaded.items() if isinstance(k, str) and isinstance(c, CodeType)}

    def code(self, source: str, filename: str) -> CodeType:
        digest = hashlib.sha256(f"{filename}\0{source}".encode()).hexdigest()  # grammars alike share a source
        self.used.add(digest)
        code = self.codes.get(digest)
        if code is None:
            code = self.codes[digest] = compile(source, filename, "exec")
            self.dirty = True
        return code

    def save(self) -> None:
        """Write the code used so far if some was compiled (what an older version of this module wrote is left
        out), atomically: a reader sees the old file or the new one."""
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps({k: c for k, c in self.codes.items() if k in self.used}))
            os.replace(tmp, self.path)
            self.dirty = False


def _compile(ns: Namespace, g: Grammar, source: str, env: dict[str, Any], name: str) -> Any:
    env.update(Err=ExiDecodeError, EncErr=ExiEncodeError, show_int=show_int, bad=bad_event, escaped=escaped_value,
               unexpected=unexpected, MISSING=MISSING, dec=ns.dec, enc=ns.enc)
    code = ns.code_cache.code(source, f"<exi {ns.key} {g.name} {name}>")
    exec(code, env)  # our own source, written from the generated tables above
    fn = env[name]
    fn.__qualname__ = f"{name}_{ns.key}_{g.name}"
    return fn


def build_decoder(ns: Namespace, gid: int) -> Any:
    g = ns.grammars[gid]
    source, env = decoder_source(ns, g)
    return _compile(ns, g, source, env, "decode")


def build_encoder(ns: Namespace, gid: int) -> Any:
    g = ns.grammars[gid]
    source, env = encoder_source(ns, g)
    return _compile(ns, g, source, env, "encode")


def source(ns: Namespace, gid: int) -> str:
    """Both functions of grammar `gid`, as written (for reading and debugging)."""
    g = ns.grammars[gid]
    return f"# {ns.key} {g.name}\n{decoder_source(ns, g)[0]}\n\n{encoder_source(ns, g)[0]}\n"
