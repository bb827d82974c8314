"""Turn schema components into normalized EXI element grammars (EXI 1.0, section 8.5.4, strict=false).

Content models are compiled Glushkov-style: one position per element particle, with a counter for
particles that may repeat, so `maxOccurs="1024"` costs three states instead of a thousand. Each state
lists its first-level productions in EXI event-code order; strict=false adds the second-level escape,
which is why a state with m productions needs ceil(log2(m + 1)) bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .xsd import (
    AttributeUse,
    ComplexType,
    ElementDecl,
    ModelGroup,
    Particle,
    QName,
    SchemaError,
    SchemaSet,
    SimpleType,
    Wildcard,
)

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
ENTER, SELF = 0, 1


def bits_for(n: int) -> int:
    """Bits needed to code n distinct values (0 for n <= 1)."""
    return max(0, (n - 1).bit_length())


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


@dataclass
class Prod:
    kind: int
    key: str | None = None
    decl: ElementDecl | AttributeUse | None = None
    simple: SimpleType | None = None
    next: int = -1
    mode: int = ENTER
    sort: tuple = ()


@dataclass
class State:
    prods: list[Prod]


@dataclass
class Selector:
    """A repeating particle's states, chosen at run time by its occurrence count n."""

    min: int
    max: int | None
    below_min: int | None  # n < min
    middle: int | None  # min <= n < max
    at_max: int | None  # n == max


@dataclass
class TypeGrammar:
    name: str
    states: list[State | Selector] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # schema order of JSON keys
    list_keys: set[str] = field(default_factory=set)
    simple_value: bool = False  # JSON value is the bare simple value (no attributes, simple type)


@dataclass(eq=False)
class _Pos:
    order: int
    terms: list[tuple[str, ElementDecl | Wildcard]]
    min: int
    max: int | None
    repeated: bool  # inside a repeating group, so its key is a JSON list


@dataclass
class _Node:
    nullable: bool
    first: list[_Pos]
    last: list[_Pos]


class _Glushkov:
    def __init__(self, schema: SchemaSet) -> None:
        self.schema = schema
        self.follow: dict[int, list[_Pos]] = {}
        self.positions: list[_Pos] = []
        self._order: dict[int, int] = {}

    def _link(self, sources: list[_Pos], targets: list[_Pos]) -> None:
        for s in sources:
            bucket = self.follow.setdefault(id(s), [])
            for t in targets:
                if t not in bucket:
                    bucket.append(t)

    def build(self, p: Particle, repeated: bool = False) -> _Node:
        rep = repeated or p.max is None or p.max > 1
        if isinstance(p.term, ModelGroup):
            return self._repeat_group(p, rep)
        # element or wildcard leaf: the counter handles its own min/max
        order = self._order.setdefault(id(p), len(self._order))
        if isinstance(p.term, Wildcard):
            terms: list[tuple[str, ElementDecl | Wildcard]] = [("*", p.term)]
        else:
            members = self.schema.substitution_members(p.term) if p.term.is_global else [p.term]
            if not members:
                raise SchemaError(f"abstract element {p.term.qname} without substitutes")
            members.sort(key=lambda d: (d.qname[1], d.qname[0]))
            terms = [(d.qname[1], d) for d in members]
        pos = _Pos(order, terms, p.min, p.max, rep)
        self.positions.append(pos)
        return _Node(p.min == 0, [pos], [pos])

    def _group_once(self, group: ModelGroup, rep: bool) -> _Node:
        nodes = [self.build(c, rep) for c in group.particles if c.max != 0]
        if group.kind == "choice":
            return _Node(any(n.nullable for n in nodes) or not nodes,
                         [x for n in nodes for x in n.first], [x for n in nodes for x in n.last])
        return self._seq(nodes)

    def _seq(self, nodes: list[_Node]) -> _Node:
        if not nodes:
            return _Node(True, [], [])
        acc = nodes[0]
        for n in nodes[1:]:
            self._link(acc.last, n.first)
            acc = _Node(acc.nullable and n.nullable,
                        acc.first + (n.first if acc.nullable else []),
                        n.last + (acc.last if n.nullable else []))
        return acc

    def _repeat_group(self, p: Particle, rep: bool) -> _Node:
        assert isinstance(p.term, ModelGroup)
        if (p.min, p.max) == (1, 1):
            return self._group_once(p.term, rep)
        required = [self._group_once(p.term, rep) for _ in range(p.min)]
        if p.max is None:
            if not required:
                loop = self._group_once(p.term, rep)
                self._link(loop.last, loop.first)
                return _Node(True, loop.first, loop.last)
            self._link(required[-1].last, required[-1].first)  # x{n,} = x^(n-1) x+
            return self._seq(required)
        # bounded tail of optional copies, nested: (x (x (x)?)?)?
        tail = _Node(True, [], [])
        for _ in range(p.max - p.min):
            c = self._group_once(p.term, rep)
            self._link(c.last, tail.first)
            tail = _Node(True, c.first, c.last + tail.last)
        return self._seq([*required, tail])


class GrammarBuilder:
    """Builds one TypeGrammar per element type of a schema set."""

    def __init__(self, schema: SchemaSet) -> None:
        self.schema = schema
        self.grammars: list[TypeGrammar] = []
        self._by_type: dict[int, int] = {}

    def grammar_id(self, t: ComplexType | SimpleType | None, element: str = "") -> int:
        """The grammar of type `t` (built once); `element` names an anonymous type after its element."""
        if t is None:
            raise SchemaError("element without type")
        key = id(t)
        if key not in self._by_type:
            self._by_type[key] = len(self.grammars)
            g = TypeGrammar(name=t.name[1] if t.name else f"{element or 'anonymous'} (anonymous type)")
            self.grammars.append(g)
            self._fill(g, t)
        return self._by_type[key]

    def _fill(self, g: TypeGrammar, t: ComplexType | SimpleType) -> None:
        if isinstance(t, SimpleType):
            g.simple_value = True
            g.states = [State([Prod(CH, "value", simple=t, next=1)]), State([Prod(EE)])]
            return
        if t.has_attribute_wildcard:
            raise SchemaError(f"type {g.name}: attribute wildcards are not supported")
        attrs = t.attributes
        k = len(attrs)
        g.keys = [a.qname[1] for a in attrs]
        states: list[State | Selector] = [State([]) for _ in range(k)]
        content_start = k
        if t.content == "simple":
            states += [State([Prod(CH, "value", simple=t.simple, next=k + 1)]), State([Prod(EE)])]
            g.keys.append("value")
        elif t.content == "empty" or t.particle is None:
            states.append(State([Prod(EE)]))
        else:
            self._content(g, t, states, k)
        if t.mixed:
            for s in states[k:]:
                if isinstance(s, State):
                    s.prods.append(Prod(CH_UNTYPED, "value", next=-1))
        # attribute states: AT(a_j) for j from i up to the first required one, then content if all optional
        for i in range(k):
            prods: list[Prod] = []
            for j in range(i, k):
                prods.append(Prod(AT, attrs[j].qname[1], decl=attrs[j], simple=attrs[j].type, next=j + 1,
                                  sort=(0, attrs[j].qname[1], attrs[j].qname[0])))
                if attrs[j].required:
                    break
            else:
                start = states[content_start]
                assert isinstance(start, State)
                prods += start.prods
            states[i] = State(prods)
        if len(set(g.keys)) != len(g.keys):
            raise SchemaError(f"type {g.name}: two particles or attributes share a JSON key: {g.keys}")
        g.states = states

    def _content(self, g: TypeGrammar, t: ComplexType, states: list[State | Selector], base: int) -> None:
        assert t.particle is not None
        gl = _Glushkov(self.schema)
        root = gl.build(t.particle)
        positions = gl.positions
        last_ids = {id(p) for p in root.last}
        # state layout: START, then per position its region states and a selector when it repeats
        start_index = len(states)
        states.append(State([]))
        entry: dict[int, int] = {}  # position -> state index to jump to on ENTER
        regions: dict[int, tuple[int | None, int | None, int | None]] = {}
        for p in positions:
            lo, hi = p.min, p.max
            below = lo > 1
            middle = hi is None or hi > max(lo, 1)
            at_max = hi is not None
            idx = []
            for flag in (below, middle, at_max):
                if flag:
                    idx.append(len(states))
                    states.append(State([]))
                else:
                    idx.append(None)
            regions[id(p)] = (idx[0], idx[1], idx[2])
            if hi == 1:
                entry[id(p)] = idx[2]  # type: ignore[assignment]
            else:
                entry[id(p)] = len(states)
                states.append(Selector(lo, hi, idx[0], idx[1], idx[2]))

        def se_prods(targets: list[_Pos], mode: int) -> list[Prod]:
            out = []
            for q in targets:
                for key, term in q.terms:
                    if isinstance(term, Wildcard):
                        kind = SE_ANY
                        srt: tuple = (2, q.order, "") if term.namespaces is None else (1, q.order, "")
                        out.append(Prod(kind, None, None, next=entry[id(q)], mode=mode, sort=srt))
                    else:
                        out.append(Prod(SE, key, term, next=entry[id(q)], mode=mode,
                                        sort=(0, q.order, term.qname[1], term.qname[0])))
            return out

        def finish(prods: list[Prod], may_end: bool, where: str) -> State:
            prods.sort(key=lambda pr: pr.sort)
            seen: set = set()
            for pr in prods:
                ident = (pr.kind, pr.decl.qname if isinstance(pr.decl, ElementDecl) else None)
                if pr.kind == SE and ident in seen:
                    raise SchemaError(f"type {g.name}: non-deterministic content model at {where}")
                seen.add(ident)
            if may_end:
                prods.append(Prod(EE))
            return State(prods)

        states[start_index] = finish(se_prods(root.first, ENTER), root.nullable, "start")
        for p in positions:
            follow = gl.follow.get(id(p), [])
            if p in follow and p.max != 1:
                raise SchemaError(f"type {g.name}: repeating particle inside a repeating group is ambiguous")
            below, middle, at_max = regions[id(p)]
            for region, idx in (("below", below), ("middle", middle), ("at_max", at_max)):
                if idx is None:
                    continue
                prods: list[Prod] = []
                if region in ("below", "middle"):
                    prods += se_prods([p], SELF)
                    for pr in prods:
                        pr.next = entry[id(p)]
                leave = region != "below"
                if leave:
                    prods += se_prods(follow, ENTER)
                states[idx] = finish(prods, leave and id(p) in last_ids, p.terms[0][0])
        # JSON keys in schema order; a key is a list when its particle can occur more than once
        seen_keys: dict[str, int] = {}
        for p in sorted(positions, key=lambda q: q.order):
            for key, term in p.terms:
                if isinstance(term, Wildcard):
                    continue
                seen_keys[key] = seen_keys.get(key, 0) + 1
                if key not in g.keys:
                    g.keys.append(key)
                if p.repeated or p.max is None or p.max > 1:
                    g.list_keys.add(key)
        _ = base


def document_elements(schema: SchemaSet) -> list[ElementDecl]:
    """Global element declarations in EXI order (local name, then namespace URI)."""
    return sorted(schema.elements.values(), key=lambda d: (d.qname[1], d.qname[0]))


def fragment_elements(schema: SchemaSet) -> list[tuple[QName, ElementDecl | None]]:
    """Unique qnames of all element declarations, sorted; None where declarations disagree on type."""
    by_qname: dict[QName, list[ElementDecl]] = {}
    for d in schema.all_element_decls():
        by_qname.setdefault(d.qname, []).append(d)
    out: list[tuple[QName, ElementDecl | None]] = []
    for qname in sorted(by_qname, key=lambda q: (q[1], q[0])):
        decls = by_qname[qname]
        same = all(d.type is decls[0].type and d.nillable == decls[0].nillable for d in decls)
        out.append((qname, decls[0] if same else None))
    return out


def _relaxed_key(q: QName, attrs: list[QName], own: set[QName]) -> str:
    """JSON key of an attribute in a relaxed grammar: its local name for the element's own attribute (or, if the
    element has none of that name, the first in sort order); Clark notation `{uri}name` for the other namesakes."""
    namesakes = [x for x in attrs if x[1] == q[1]]
    preferred = next((x for x in namesakes if x in own), namesakes[0])
    return q[1] if q == preferred else f"{{{q[0]}}}{q[1]}"


def relaxed_fragment_grammar(schema: SchemaSet, qname: QName, fragment_count: int) -> TypeGrammar:
    """EXI 1.0 section 8.5.3: the element fragment grammar of a qname declared with several types.

    ElementFragment_0: AT(A_i) for every attribute qname of the schema set (sorted), AT(*), SE(F_j) for every
    fragment element, SE(*), EE, CH [untyped]; after content, ElementFragment_2 without the attributes. An attribute
    keeps its schema type when all its declarations agree, else it is untyped (a string). Child elements and
    wildcards are counted for the event codes but not representable in the JSON view.
    """
    decls = [d for d in schema.all_element_decls() if d.qname == qname]
    own_attrs = {a.qname for d in decls if isinstance(d.type, ComplexType) for a in d.type.attributes}
    uses: dict[QName, list[SimpleType]] = {}
    types = [d.type for d in schema.all_element_decls()] + list(schema.complex_types.values())
    seen: set[int] = set()
    for t in types:
        if isinstance(t, ComplexType) and id(t) not in seen:
            seen.add(id(t))
            for a in t.attributes:
                uses.setdefault(a.qname, []).append(a.type)
    string = SimpleType(None, "string")
    attrs = sorted(uses, key=lambda q: (q[1], q[0]))
    g = TypeGrammar(name=f"{qname[1]} (relaxed fragment grammar)")
    at_prods: list[Prod] = []
    for q in attrs:
        kinds = {datatype(st) for st in uses[q]}
        st = uses[q][0] if len(kinds) == 1 else string
        key = _relaxed_key(q, attrs, own_attrs)
        at_prods.append(Prod(AT, key, decl=AttributeUse(q, st, False), simple=st, next=0))
        if key not in g.keys:
            g.keys.append(key)
    content = [Prod(SE_ANY, next=1) for _ in range(fragment_count)] + [Prod(SE_ANY, next=1), Prod(EE),
                                                                       Prod(CH_UNTYPED, "value", simple=string, next=1)]
    g.keys.append("value")
    g.states = [State([*at_prods, Prod(SE_ANY, next=0), *content]), State([Prod(p.kind, p.key, p.decl, p.simple,
                                                                                p.next) for p in content])]
    return g
