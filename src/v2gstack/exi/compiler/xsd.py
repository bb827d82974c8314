"""Load the ISO 15118 XSD files into a small component model (types, elements, particles).

Only what schema-informed EXI needs is modelled: element and attribute declarations, complex and
simple types with their facets, model groups, wildcards and substitution groups.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

XS = "http://www.w3.org/2001/XMLSchema"
QName = tuple[str, str]  # (namespace uri, local name)
# Facets the standard's text overrides. ISO 15118-20 dhPublicKeyType says xs:length 133, but [V2G20-2495] forbids
# padding a 448-bit key to 133 bytes and NOTE 6/7 to [V2G20-2489] make it "maximum 133", 57 for X448: so maxLength.
FACET_ERRATA: dict[QName, dict[str, int | None]] = {
    ("urn:iso:std:iso:15118:-20:CommonMessages", "dhPublicKeyType"): {"length": None, "max_length": 133},
}


class SchemaError(Exception):
    """The XSD set uses a construct this compiler does not support, or is inconsistent."""


@dataclass
class SimpleType:
    """An atomic simple type reduced to its built-in primitive plus accumulated facets."""

    name: QName | None
    builtin: str  # local name of the XSD built-in the type derives from (string, unsignedShort, ...)
    enumeration: list[str] | None = None
    min_value: int | None = None
    max_value: int | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass
class AttributeUse:
    qname: QName
    type: SimpleType
    required: bool


@dataclass(eq=False)
class ElementDecl:
    qname: QName
    type: ComplexType | SimpleType | None = None
    is_global: bool = False
    abstract: bool = False
    subst_head: QName | None = None
    nillable: bool = False


@dataclass(eq=False)
class Wildcard:
    """xs:any; `namespaces` is None for ##any/##other (EXI SE(*)), else the allowed URIs (SE(uri:*))."""

    namespaces: list[str] | None


@dataclass(eq=False)
class ModelGroup:
    kind: str  # sequence | choice
    particles: list[Particle]


@dataclass(eq=False)
class Particle:
    min: int
    max: int | None  # None = unbounded
    term: ElementDecl | ModelGroup | Wildcard


@dataclass(eq=False)
class ComplexType:
    name: QName | None
    attributes: list[AttributeUse] = field(default_factory=list)
    content: str = "empty"  # empty | simple | element
    mixed: bool = False
    simple: SimpleType | None = None
    particle: Particle | None = None
    abstract: bool = False
    has_attribute_wildcard: bool = False


# Built-in integer ranges (XSD Part 2).
INT_RANGES: dict[str, tuple[int | None, int | None]] = {
    "integer": (None, None),
    "long": (-(2**63), 2**63 - 1),
    "int": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None),
    "nonPositiveInteger": (None, 0),
    "negativeInteger": (None, -1),
    "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedByte": (0, 255),
}
STRING_LIKE = {
    "string", "normalizedString", "token", "anyURI", "ID", "IDREF", "NCName", "Name", "NMTOKEN", "language",
}
OTHER_BUILTINS = {"boolean", "hexBinary", "base64Binary"}


def _qn(tag: str) -> QName:
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        return uri, local
    return "", tag


@dataclass
class _Doc:
    path: Path
    root: ET.Element
    target: str
    prefixes: dict[str, str]
    element_qualified: bool
    attribute_qualified: bool

    def resolve(self, value: str) -> QName:
        prefix, _, local = value.rpartition(":")
        if prefix not in self.prefixes:
            if prefix == "":
                return "", local
            raise SchemaError(f"{self.path.name}: unknown prefix {prefix!r} in {value!r}")
        return self.prefixes[prefix], local


class SchemaSet:
    """All components reachable from one top-level XSD file (imports and includes followed)."""

    def __init__(self, entry: Path, search_root: Path | None = None) -> None:
        self.search_root = search_root or entry.parent
        self.docs: list[_Doc] = []
        self._raw: dict[str, dict[QName, tuple[_Doc, ET.Element]]] = {
            "element": {}, "complexType": {}, "simpleType": {}, "attribute": {}, "group": {},
        }
        self._loaded: set[Path] = set()
        self._load(entry.resolve())
        self.elements: dict[QName, ElementDecl] = {}
        self.complex_types: dict[QName, ComplexType] = {}
        self.simple_types: dict[QName, SimpleType] = {}
        self.local_elements: list[ElementDecl] = []
        for qname in self._raw["element"]:
            self.global_element(qname)
        # named types nobody references still declare local elements (they count in fragment grammars)
        for kind in ("complexType", "simpleType"):
            for qname in self._raw[kind]:
                self.type_by_name(qname)

    # ---------------------------------------------------------------- loading
    def _load(self, path: Path) -> None:
        if path in self._loaded:
            return
        self._loaded.add(path)
        prefixes: dict[str, str] = {}
        for event, data in ET.iterparse(path, events=("start-ns",)):
            if event == "start-ns":
                prefix, uri = data
                prefixes.setdefault(prefix, uri)
        root = ET.parse(path).getroot()
        if _qn(root.tag) != (XS, "schema"):
            raise SchemaError(f"{path}: not an XML schema")
        doc = _Doc(
            path=path, root=root, target=root.get("targetNamespace", ""), prefixes=prefixes,
            element_qualified=root.get("elementFormDefault") == "qualified",
            attribute_qualified=root.get("attributeFormDefault") == "qualified",
        )
        self.docs.append(doc)
        for child in root:
            uri, kind = _qn(child.tag)
            if uri != XS:
                continue
            if kind in ("import", "include"):
                self._load(self._locate(path, child.get("schemaLocation"), child.get("namespace")))
            elif kind in self._raw:
                self._raw[kind][(doc.target, child.get("name", ""))] = (doc, child)
            elif kind in ("annotation", "notation"):
                continue
            else:
                raise SchemaError(f"{path.name}: unsupported top-level xs:{kind}")

    def _locate(self, base: Path, location: str | None, namespace: str | None) -> Path:
        if location:
            candidate = (base.parent / location).resolve()
            if candidate.exists():
                return candidate
        # Some official files point at a copy of a schema that is not beside them: find it by namespace.
        for candidate in sorted(self.search_root.rglob("*.xsd")):
            root = ET.parse(candidate).getroot()
            if namespace is not None and root.get("targetNamespace") == namespace:
                return candidate.resolve()
        raise SchemaError(f"{base.name}: cannot find imported schema {location!r} ({namespace})")

    # ---------------------------------------------------------------- components
    def global_element(self, qname: QName) -> ElementDecl:
        if qname in self.elements:
            return self.elements[qname]
        if qname not in self._raw["element"]:
            raise SchemaError(f"unknown element {qname}")
        doc, node = self._raw["element"][qname]
        decl = ElementDecl(qname=qname, is_global=True, abstract=node.get("abstract") == "true")
        self.elements[qname] = decl
        decl.nillable = node.get("nillable") == "true"
        if node.get("substitutionGroup"):
            decl.subst_head = doc.resolve(node.get("substitutionGroup", ""))
        decl.type = self._element_type(doc, node)
        return decl

    def substitution_members(self, head: ElementDecl) -> list[ElementDecl]:
        """The head (abstract or not, as EXIficient lists it) and every element that may substitute for it."""
        out: list[ElementDecl] = [head]
        for decl in self.elements.values():
            if decl.subst_head == head.qname:
                out.extend(self.substitution_members(decl))
        return out

    def _element_type(self, doc: _Doc, node: ET.Element) -> ComplexType | SimpleType:
        if node.get("type"):
            return self.type_by_name(doc.resolve(node.get("type", "")))
        for child in node:
            uri, kind = _qn(child.tag)
            if uri == XS and kind == "complexType":
                return self._complex(doc, child, None)
            if uri == XS and kind == "simpleType":
                return self._simple(doc, child, None)
        if node.get("substitutionGroup"):
            head = self.global_element(doc.resolve(node.get("substitutionGroup", "")))
            if head.type is None:
                raise SchemaError(f"element {node.get('name')}: head type not known yet")
            return head.type
        return ComplexType(name=(XS, "anyType"), content="element", mixed=True,
                           particle=Particle(0, None, Wildcard(None)))

    def type_by_name(self, qname: QName) -> ComplexType | SimpleType:
        if qname[0] == XS:
            return self._builtin(qname[1])
        if qname in self.complex_types:
            return self.complex_types[qname]
        if qname in self.simple_types:
            return self.simple_types[qname]
        if qname in self._raw["complexType"]:
            doc, node = self._raw["complexType"][qname]
            return self._complex(doc, node, qname)
        if qname in self._raw["simpleType"]:
            doc, node = self._raw["simpleType"][qname]
            return self._simple(doc, node, qname)
        raise SchemaError(f"unknown type {qname}")

    def _builtin(self, local: str) -> SimpleType:
        if local in INT_RANGES:
            lo, hi = INT_RANGES[local]
            return SimpleType((XS, local), local, min_value=lo, max_value=hi)
        if local in STRING_LIKE or local in OTHER_BUILTINS:
            return SimpleType((XS, local), local)
        raise SchemaError(f"unsupported built-in type xs:{local}")

    def _simple(self, doc: _Doc, node: ET.Element, name: QName | None) -> SimpleType:
        for child in node:
            uri, kind = _qn(child.tag)
            if uri != XS or kind == "annotation":
                continue
            if kind != "restriction":
                raise SchemaError(f"{doc.path.name}: simple type {name}: xs:{kind} is not supported")
            st = self._restrict(doc, child)
            st.name = name
            for facet, value in FACET_ERRATA.get(name, {}).items() if name is not None else ():
                setattr(st, facet, value)
            if name is not None:
                self.simple_types[name] = st
            return st
        raise SchemaError(f"{doc.path.name}: empty simple type {name}")

    def _restrict(self, doc: _Doc, node: ET.Element) -> SimpleType:
        if node.get("base"):
            base = self.type_by_name(doc.resolve(node.get("base", "")))
            if not isinstance(base, SimpleType):
                raise SchemaError(f"{doc.path.name}: simple restriction of a complex type")
        else:
            inner = [c for c in node if _qn(c.tag) == (XS, "simpleType")]
            base = self._simple(doc, inner[0], None)
        st = SimpleType(None, base.builtin, base.enumeration, base.min_value, base.max_value,
                        base.length, base.min_length, base.max_length)
        enums: list[str] = []
        for facet in node:
            uri, kind = _qn(facet.tag)
            if uri != XS or kind in ("annotation", "simpleType", "attribute", "anyAttribute"):
                continue
            value = facet.get("value", "")
            if kind == "enumeration":
                enums.append(value)
            elif kind == "minInclusive":
                st.min_value = int(value)
            elif kind == "maxInclusive":
                st.max_value = int(value)
            elif kind == "minExclusive":
                st.min_value = int(value) + 1
            elif kind == "maxExclusive":
                st.max_value = int(value) - 1
            elif kind == "length":
                st.length = int(value)
            elif kind == "minLength":
                st.min_length = int(value)
            elif kind == "maxLength":
                st.max_length = int(value)
            elif kind in ("whiteSpace",):
                continue
            else:
                raise SchemaError(f"{doc.path.name}: facet xs:{kind} is not supported")
        if enums:
            st.enumeration = enums
        return st

    def _complex(self, doc: _Doc, node: ET.Element, name: QName | None) -> ComplexType:
        ct = ComplexType(name=name, abstract=node.get("abstract") == "true", mixed=node.get("mixed") == "true")
        if name is not None:
            self.complex_types[name] = ct
        particle: Particle | None = None
        for child in node:
            uri, kind = _qn(child.tag)
            if uri != XS or kind == "annotation":
                continue
            if kind in ("sequence", "choice", "all", "group"):
                particle = self._particle(doc, child)
            elif kind == "attribute":
                ct.attributes.append(self._attribute(doc, child))
            elif kind == "anyAttribute":
                ct.has_attribute_wildcard = True
            elif kind == "simpleContent":
                self._simple_content(doc, child, ct)
                return ct
            elif kind == "complexContent":
                self._complex_content(doc, child, ct)
                return ct
            else:
                raise SchemaError(f"{doc.path.name}: xs:{kind} in complex type {name}")
        self._set_particle(ct, particle)
        ct.attributes.sort(key=lambda a: (a.qname[1], a.qname[0]))
        return ct

    @staticmethod
    def _set_particle(ct: ComplexType, particle: Particle | None) -> None:
        if particle is not None and not _empty_particle(particle):
            ct.content = "element"
            ct.particle = particle
        elif ct.mixed:
            ct.content = "element"
            ct.particle = None
        else:
            ct.content = "empty"

    def _simple_content(self, doc: _Doc, node: ET.Element, ct: ComplexType) -> None:
        for deriv in node:
            uri, kind = _qn(deriv.tag)
            if uri != XS or kind == "annotation":
                continue
            base = self.type_by_name(doc.resolve(deriv.get("base", "")))
            if isinstance(base, ComplexType):
                if base.simple is None:
                    raise SchemaError(f"{doc.path.name}: simpleContent over non-simple {base.name}")
                ct.attributes.extend(base.attributes)
                simple = base.simple
            else:
                simple = base
            if kind == "restriction":
                simple = self._restrict(doc, deriv) if any(
                    _qn(f.tag)[1] not in ("attribute", "annotation") for f in deriv) else simple
            for attr in deriv:
                if _qn(attr.tag) == (XS, "attribute"):
                    self._merge_attribute(ct, self._attribute(doc, attr))
                elif _qn(attr.tag) == (XS, "anyAttribute"):
                    ct.has_attribute_wildcard = True
            ct.content = "simple"
            ct.simple = simple
        ct.attributes.sort(key=lambda a: (a.qname[1], a.qname[0]))

    def _complex_content(self, doc: _Doc, node: ET.Element, ct: ComplexType) -> None:
        if node.get("mixed") == "true":
            ct.mixed = True
        for deriv in node:
            uri, kind = _qn(deriv.tag)
            if uri != XS or kind == "annotation":
                continue
            base = self.type_by_name(doc.resolve(deriv.get("base", "")))
            if not isinstance(base, ComplexType):
                raise SchemaError(f"{doc.path.name}: complexContent over simple type")
            own: Particle | None = None
            attributes = list(base.attributes)
            ct.attributes = attributes
            for child in deriv:
                cu, ck = _qn(child.tag)
                if cu != XS or ck == "annotation":
                    continue
                if ck in ("sequence", "choice", "all", "group"):
                    own = self._particle(doc, child)
                elif ck == "attribute":
                    if child.get("use") == "prohibited":
                        target = self._attribute(doc, child).qname
                        ct.attributes = [a for a in ct.attributes if a.qname != target]
                    else:
                        self._merge_attribute(ct, self._attribute(doc, child))
                elif ck == "anyAttribute":
                    ct.has_attribute_wildcard = True
                else:
                    raise SchemaError(f"{doc.path.name}: xs:{ck} in complexContent")
            ct.has_attribute_wildcard = ct.has_attribute_wildcard or base.has_attribute_wildcard
            if kind == "extension":
                ct.mixed = ct.mixed or base.mixed
                parts = [p for p in (base.particle, own) if p is not None and not _empty_particle(p)]
                if len(parts) == 2:
                    particle: Particle | None = Particle(1, 1, ModelGroup("sequence", parts))
                else:
                    particle = parts[0] if parts else None
                if base.content == "simple":
                    raise SchemaError(f"{doc.path.name}: complexContent extension of simple content")
            else:
                particle = own
            self._set_particle(ct, particle)
        ct.attributes.sort(key=lambda a: (a.qname[1], a.qname[0]))

    @staticmethod
    def _merge_attribute(ct: ComplexType, use: AttributeUse) -> None:
        ct.attributes = [a for a in ct.attributes if a.qname != use.qname] + [use]

    def _attribute(self, doc: _Doc, node: ET.Element) -> AttributeUse:
        if node.get("ref"):
            qname = doc.resolve(node.get("ref", ""))
            gdoc, gnode = self._raw["attribute"][qname]
            st = self._attr_type(gdoc, gnode)
        else:
            form = node.get("form")
            qualified = form == "qualified" if form else doc.attribute_qualified
            qname = (doc.target if qualified else "", node.get("name", ""))
            st = self._attr_type(doc, node)
        return AttributeUse(qname, st, node.get("use") == "required")

    def _attr_type(self, doc: _Doc, node: ET.Element) -> SimpleType:
        if node.get("type"):
            t = self.type_by_name(doc.resolve(node.get("type", "")))
        else:
            inner = [c for c in node if _qn(c.tag) == (XS, "simpleType")]
            t = self._simple(doc, inner[0], None) if inner else self._builtin("string")
        if not isinstance(t, SimpleType):
            raise SchemaError("attribute of complex type")
        return t

    def _occurs(self, node: ET.Element) -> tuple[int, int | None]:
        lo = int(node.get("minOccurs", "1"))
        hi_s = node.get("maxOccurs", "1")
        return lo, None if hi_s == "unbounded" else int(hi_s)

    def _particle(self, doc: _Doc, node: ET.Element) -> Particle:
        _, kind = _qn(node.tag)
        lo, hi = self._occurs(node)
        if kind in ("sequence", "choice"):
            parts = [self._particle(doc, c) for c in node
                     if _qn(c.tag)[0] == XS and _qn(c.tag)[1] != "annotation"]
            return Particle(lo, hi, ModelGroup(kind, parts))
        if kind == "element":
            if node.get("ref"):
                decl = self.global_element(doc.resolve(node.get("ref", "")))
            else:
                form = node.get("form")
                qualified = form == "qualified" if form else doc.element_qualified
                decl = ElementDecl(qname=(doc.target if qualified else "", node.get("name", "")))
                decl.nillable = node.get("nillable") == "true"
                self.local_elements.append(decl)
                decl.type = self._element_type(doc, node)
            return Particle(lo, hi, decl)
        if kind == "any":
            ns = node.get("namespace", "##any")
            if ns in ("##any", "##other"):
                return Particle(lo, hi, Wildcard(None))
            uris = ["" if u == "##local" else doc.target if u == "##targetNamespace" else u for u in ns.split()]
            return Particle(lo, hi, Wildcard(sorted(uris)))
        if kind == "group":
            gdoc, gnode = self._raw["group"][doc.resolve(node.get("ref", ""))]
            inner = [c for c in gnode if _qn(c.tag)[1] in ("sequence", "choice", "all")]
            p = self._particle(gdoc, inner[0])
            return Particle(lo, hi, p.term) if (p.min, p.max) == (1, 1) else Particle(
                lo, hi, ModelGroup("sequence", [p]))
        raise SchemaError(f"{doc.path.name}: particle xs:{kind} is not supported")

    def all_element_decls(self) -> list[ElementDecl]:
        return list(self.elements.values()) + self.local_elements


def _empty_particle(p: Particle) -> bool:
    if p.max == 0:
        return True
    return isinstance(p.term, ModelGroup) and all(_empty_particle(c) for c in p.term.particles)
