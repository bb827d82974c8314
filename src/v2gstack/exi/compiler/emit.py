"""Write one generated grammar module per namespace: plain tuples the runtime codec walks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .grammar import (
    AT,
    CH,
    CH_UNTYPED,
    SE,
    GrammarBuilder,
    Selector,
    State,
    bits_for,
    document_elements,
    fragment_elements,
    relaxed_fragment_grammar,
)
from .xsd import QName, SchemaError, SchemaSet, SimpleType

# v2gstack namespace key -> entry schema, relative to the iso15118 schema folder
NAMESPACES: dict[str, str] = {
    "appHand": "V2G_CI_AppProtocol.xsd",
    "din": "din_spec/V2G_CI_MsgDef.xsd",
    "iso2": "iso15118_2/V2G_CI_MsgDef.xsd",
    "iso20": "iso15118_20/V2G_CI_CommonMessages.xsd",
    "iso20_ac": "iso15118_20/V2G_CI_AC.xsd",
    "iso20_dc": "iso15118_20/V2G_CI_DC.xsd",
    "iso20_wpt": "iso15118_20/V2G_CI_WPT.xsd",
    "iso20_acdp": "iso15118_20/V2G_CI_ACDP.xsd",
    "xmldsig": "xmldsig-core-schema.xsd",
}


def datatype(st: SimpleType) -> tuple:
    """The EXI datatype representation (EXI 1.0 section 7.1) of a simple type, with its facets."""
    if st.enumeration is not None:
        return ("enum", tuple(st.enumeration))
    b = st.builtin
    if b == "boolean":
        return ("bool",)
    if b in ("hexBinary", "base64Binary"):
        return ("hex" if b == "hexBinary" else "b64", st.length, st.min_length, st.max_length)
    if st.min_value is not None or st.max_value is not None or b in ("integer",) or b.endswith(
            ("Integer", "Long", "Int", "Short", "Byte", "long", "int", "short", "byte")):
        lo, hi = st.min_value, st.max_value
        if lo is not None and hi is not None and hi - lo < 4096:
            return ("nbit", bits_for(hi - lo + 1), lo, hi)
        if lo is not None and lo >= 0:
            return ("uint", lo, hi)
        return ("int", lo, hi)
    return ("string", st.length, st.min_length, st.max_length)


def _tuple_literal(items: list[tuple]) -> str:
    """A tuple literal with runs of identical items written as `*((item,) * n)` (relaxed grammars repeat one
    placeholder production hundreds of times)."""
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        parts.append(f"*(({items[i]!r},) * {j - i})" if j - i > 3 else ", ".join(repr(x) for x in items[i:j]))
        i = j
    return f"({', '.join(parts)},)"


class _Tables:
    def __init__(self) -> None:
        self.qnames: list[QName] = []
        self._q: dict[QName, int] = {}
        self.types: list[tuple] = []
        self._t: dict[tuple, int] = {}

    def qid(self, q: QName) -> int:
        if q not in self._q:
            self._q[q] = len(self.qnames)
            self.qnames.append(q)
        return self._q[q]

    def tid(self, st: SimpleType) -> int:
        dt = datatype(st)
        if dt not in self._t:
            self._t[dt] = len(self.types)
            self.types.append(dt)
        return self._t[dt]


def generate(ns: str, schema_root: Path) -> str:
    entry = schema_root / NAMESPACES[ns]
    schema = SchemaSet(entry, schema_root)
    builder = GrammarBuilder(schema)
    tables = _Tables()
    docs = [(d.qname[1], builder.grammar_id(d.type, d.qname[1]), tables.qid(d.qname))
            for d in document_elements(schema)]
    frags = []
    frag_list = fragment_elements(schema)
    for qname, decl in frag_list:
        if decl is not None:
            gid = builder.grammar_id(decl.type, qname[1])
        else:
            gid = len(builder.grammars)
            builder.grammars.append(relaxed_fragment_grammar(schema, qname, len(frag_list)))
        frags.append((qname[1], gid, tables.qid(qname)))
    grammar_rows: list[str] = []
    i = 0
    while i < len(builder.grammars):  # grammars may be added while walking (child types)
        g = builder.grammars[i]
        rows = []
        for s in g.states:
            if isinstance(s, Selector):
                rows.append(repr((None, s.min, s.max, s.below_min, s.middle, s.at_max)))
                continue
            assert isinstance(s, State)
            prods = []
            for p in s.prods:
                if p.kind == SE:
                    arg: object = (builder.grammar_id(p.decl.type, p.decl.qname[1]), tables.qid(p.decl.qname))  # type: ignore[union-attr]
                elif p.kind == AT:
                    arg = (tables.tid(p.simple), tables.qid(p.decl.qname))  # type: ignore[arg-type,union-attr]
                elif p.kind == CH:
                    arg = (tables.tid(p.simple), -1)  # type: ignore[arg-type]
                elif p.kind == CH_UNTYPED:
                    arg = (tables.tid(p.simple), -1) if p.simple is not None else None  # typed as string: relaxed
                else:
                    arg = None
                prods.append((p.kind, p.key, arg, p.next, p.mode))
            rows.append(f"({bits_for(len(prods) + 1)}, {_tuple_literal(prods)})")
        states = ",\n        ".join(rows)
        grammar_rows.append(
            f"    # {i}: {g.name}\n    ({g.name!r}, {tuple(g.keys)!r}, {tuple(sorted(g.list_keys))!r}, "
            f"{g.simple_value!r}, (\n        {states},\n    )),"
        )
        i += 1
    digest = hashlib.sha256()
    for doc in sorted(schema.docs, key=lambda d: d.path.name):
        digest.update(doc.path.read_bytes())
    lines = [
        f'"""EXI grammars for namespace {ns!r}: generated by `make exi-codegen` from {NAMESPACES[ns]}. Do not edit."""',
        "",
        "# fmt: off",
        f"NAMESPACE = {ns!r}",
        f"SCHEMA_SHA256 = {digest.hexdigest()!r}",
        f"QNAMES = {tuple(tables.qnames)!r}",
        "TYPES = (",
        *[f"    {t!r}," for t in tables.types],
        ")",
        f"DOCUMENT = ({bits_for(len(docs) + 1)}, {tuple(docs)!r})",
        f"FRAGMENT = ({bits_for(len(frags) + 2)}, {tuple(frags)!r})",
        "GRAMMARS = (",
        *grammar_rows,
        ")",
        "",
    ]
    return "\n".join(lines)


def generate_all(schema_root: Path, out_dir: Path) -> list[Path]:
    if not schema_root.is_dir():
        raise SchemaError(f"schema folder not found: {schema_root}")
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for ns in NAMESPACES:
        path = out_dir / f"{ns}.py"
        path.write_text(generate(ns, schema_root))
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text('"""Generated EXI grammar modules, one per namespace (see docs/exi.md). Do not edit."""\n')
    return written
