"""The codec's per-grammar functions (exi/specialize.py): written from the tables, kept compiled between runs."""

from __future__ import annotations

from pathlib import Path

from v2gstack import exi
from v2gstack.exi import specialize
from v2gstack.exi.codec import RELAXED, Namespace, namespace
from v2gstack.exi.specialize import CodeCache


def test_a_serving_process_has_every_message_grammar_written_but_the_relaxed_ones() -> None:
    ns = namespace("iso2")
    ns.specialize_all()
    written = {g.name for g in ns.grammars if ns.dec[g.gid].__name__ == "decode" and
               ns.enc[g.gid].__name__ == "encode"}
    assert "CurrentDemandResType" in written and "PhysicalValueType" in written
    assert all(g.name in written for g in ns.grammars if not g.name.endswith(RELAXED))
    assert any(g.name.endswith(RELAXED) for g in ns.grammars)


def test_a_grammar_is_written_the_first_time_it_is_used() -> None:
    ns = Namespace("appHand")  # a namespace of its own: nothing used it before
    gid = ns.doc_index["supportedAppProtocolRes"][1]
    assert ns.dec[gid].__name__ == ns.enc[gid].__name__ == "first"
    doc = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}}
    data = ns.encode(doc, False)
    assert ns.enc[gid].__name__ == "encode" and ns.dec[gid].__name__ == "first"
    assert ns.decode(data, False) == doc and ns.dec[gid].__name__ == "decode"
    assert data == exi.encode("appHand", doc)


def test_the_source_of_a_grammar_reads_its_states_in_order() -> None:
    text = specialize.source(namespace("din"), namespace("din").doc_index["CurrentDemandReq"][1])
    assert text.startswith("# din CurrentDemandReqType")
    assert "def decode(r, qid):" in text and "def encode(w, x, qid):" in text
    assert text.index("'DC_EVStatus'") < text.index("'EVTargetCurrent'") < text.index("'EVTargetVoltage'")


def test_compiled_code_is_kept_and_found_again(tmp_path: Path) -> None:
    cache = CodeCache("iso2", tmp_path)
    code = cache.code("def decode(r, qid):\n    return 1\n", "<exi test decode>")
    assert cache.dirty
    cache.save()
    assert cache.path.exists() and not cache.dirty
    again = CodeCache("iso2", tmp_path)
    assert again.code("def decode(r, qid):\n    return 1\n", "<exi test decode>") == code
    assert not again.dirty  # found, not compiled


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    cache = CodeCache("iso2", tmp_path)
    cache.path.write_bytes(b"\x00not marshal at all")
    fresh = CodeCache("iso2", tmp_path)
    assert fresh.codes == {}
    fresh.code("x = 1\n", "<exi test>")
    fresh.save()
    assert CodeCache("iso2", tmp_path).codes  # rewritten whole


def test_an_unwritable_cache_folder_only_costs_compiling(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = CodeCache("iso2", blocker / "sub")  # its folder cannot be made
    cache.code("x = 2\n", "<exi test>")
    cache.save()  # no error
    assert cache.dirty
