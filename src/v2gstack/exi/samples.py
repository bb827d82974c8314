"""Random schema-valid documents of any namespace, walked from the same grammars the codec uses.

Used by the round-trip property tests, the fuzzer's seed corpus, vector generation and benchmarks.
The walk only picks JSON keys in schema order, so every document it makes is representable in the
JSON view.
"""

from __future__ import annotations

import base64
import importlib
import random
import string
from typing import Any

from .codec import AT, CH, CH_UNTYPED, EE, SE, Grammar, Namespace, namespace

CH_UNTYPED_TEXT = -1  # local marker: untyped character data the JSON view can carry
_ALPHABET = string.ascii_letters + string.digits + "-_.:/#"


def random_value(ns: Namespace, tid: int, rng: random.Random, max_len: int = 24) -> Any:
    """A random value of generated datatype `tid` that satisfies its facets."""
    dt = _types(ns)[tid]
    kind = dt[0]
    if kind == "enum":
        return rng.choice(dt[1])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "nbit":
        return rng.randint(dt[2], dt[3])
    if kind in ("uint", "int"):
        lo = dt[1] if dt[1] is not None else -(2**40)
        hi = dt[2] if dt[2] is not None else 2**40
        pick = rng.random()
        if pick < 0.2:
            return lo
        if pick < 0.4:
            return hi
        if pick < 0.7:
            return max(lo, min(hi, rng.randint(-300, 300)))
        return rng.randint(lo, hi)
    length, lo_len, hi_len = dt[1], dt[2], dt[3]
    if length is not None:
        n = length
    else:
        lo_n = lo_len or 0
        hi_n = hi_len if hi_len is not None else max(lo_n, max_len)
        n = rng.randint(lo_n, min(hi_n, max(lo_n, max_len)))
    if kind == "hex":
        return rng.randbytes(n).hex().upper()
    if kind == "b64":
        return base64.b64encode(rng.randbytes(n)).decode("ascii")
    return "".join(rng.choice(_ALPHABET) for _ in range(n))


def _types(ns: Namespace) -> tuple:
    """The generated type table of `ns`."""
    return importlib.import_module(f"v2gstack.exi.generated.{ns.key}").TYPES


def random_element(ns: Namespace, g: Grammar, rng: random.Random, depth: int = 0, max_items: int = 3) -> Any:
    """Walk grammar `g` from its first state, choosing productions at random, keys in schema order."""
    if g.simple_value:
        (_, _, arg, _, _), = g.raw[0][1]
        return random_value(ns, arg[0], rng)
    out: dict[str, Any] = {}
    order = {k: i for i, k in enumerate(g.keys)}
    states = g.raw
    s = states[0]
    n = 0
    last_key = -1
    while True:
        if s[0] is None:
            _, lo, hi, below, middle, at_max = s
            s = states[below if n < lo else middle if hi is None or n < hi else at_max]
        prods = s[1]
        choices = []
        for kind, key, arg, nxt, mode in prods:
            if kind == CH_UNTYPED and arg is not None:
                kind = CH_UNTYPED_TEXT  # a relaxed fragment grammar's character data: a string
            if kind == EE:
                choices.append((kind, key, arg, nxt, mode))
            elif kind in (AT, SE, CH, CH_UNTYPED_TEXT):
                idx = order[key]
                repeat = key in g.list_keys and idx == last_key
                if idx > last_key or repeat:
                    if kind == SE and repeat and len(out.get(key, ())) >= max_items:
                        continue
                    choices.append((kind, key, arg, nxt, mode))
        if not choices:
            raise RuntimeError(f"{g.name}: random walk is stuck")  # a grammar with no representable path
        ee = [c for c in choices if c[0] == EE]
        other = [c for c in choices if c[0] != EE]
        stop_bias = 0.35 + 0.15 * depth
        pick = ee[0] if ee and (not other or rng.random() < stop_bias) else rng.choice(other)
        kind, key, arg, nxt, mode = pick
        if kind == EE:
            return out
        last_key = order[key]
        if kind == SE:
            value = random_element(ns, ns.grammars[arg[0]], rng, depth + 1, max_items)
            if key in g.list_keys:
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
            n = n + 1 if mode else 1
        else:
            value = random_value(ns, arg[0], rng)
            if kind == CH_UNTYPED_TEXT and not value:
                value = "x"  # an empty untyped value has no CH event at all, so it would not come back as ""
            out[key] = value
        s = states[nxt]


def random_document(ns_key: str, root: str, rng: random.Random, *, fragment: bool = False) -> dict[str, Any]:
    """A random valid document (or fragment) whose root element is `root`."""
    ns = namespace(ns_key)
    index = ns.frag_index if fragment else ns.doc_index
    _, gid, _ = index[root]
    if gid < 0:
        raise ValueError(f"{root!r} has several declarations in {ns_key!r}: no single grammar to walk")
    return {root: random_element(ns, ns.grammars[gid], rng)}


def message_roots(ns_key: str, *, fragment: bool = False) -> list[str]:
    """Roots whose documents the JSON view can express (not those that need xs:any wildcard content)."""
    ns = namespace(ns_key)
    out = []
    for name, gid, _ in ns.frag_elements if fragment else ns.doc_elements:
        if gid < 0:
            continue
        try:
            random_document(ns_key, name, random.Random(0), fragment=fragment)
        except RuntimeError:
            continue
        out.append(name)
    return out
