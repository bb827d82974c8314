"""The decoder fuzzer (tools/exi_fuzz.py) at a small scale, plus checks that its watchdogs work."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
from helpers.tools import exi_fuzz as fuzz

from v2gstack import exi

needs_fork = pytest.mark.skipif("fork" not in mp.get_all_start_methods(),
                                reason="the injected check functions reach the workers through fork")
SEED = 20240611


def _report(summary) -> str:
    return "\n".join(fuzz.format_finding(f, SEED)[:3000] for f in summary.findings) + "\n" + summary.line()


@pytest.mark.timeout(120)
def test_fuzz_20000_inputs_raise_only_exi_decode_error():
    summary = fuzz.run(20_000, seed=SEED, jobs=2, keep_going=True, progress=None, out=lambda s: None)
    assert not summary.signatures, _report(summary)
    assert summary.done == 20_000
    assert sum(summary.outcomes.values()) == 20_000
    # the corpus mutations must reach both outcomes in quantity, or the fuzzer only tests the header check
    assert summary.outcomes["decode_error"] > 5_000
    assert summary.outcomes["roundtrip_ok"] + summary.outcomes["reencode_rejected"] > 1_000
    assert summary.slowest < 2.0
    assert 0 < summary.peak_rss_mb < 1024


def test_inputs_are_reproducible_and_varied():
    corpus = fuzz.build_corpus(SEED, docs_per_root=1)
    first = [fuzz.make_input(corpus, SEED, i) for i in range(3000)]
    assert first[:50] == [fuzz.make_input(corpus, SEED, i) for i in range(50)]
    assert first[:50] != [fuzz.make_input(corpus, SEED + 1, i) for i in range(50)]
    ops = {op for *_, how in first for op in how.split("+")}
    assert {"random", "prefix", "bitflip", "byte", "truncate", "insert", "insert_bits",
            "delete_bits", "splice", "varint_insert", "varint_overwrite", "big_length", "append"} <= ops
    assert {ns for ns, *_ in first} == set(exi.NAMESPACES)
    assert {frag for _, frag, *_ in first} == {False, True}
    assert any(data[:1] == b"\x80" for _, _, data, how in first if how == "random")
    assert any(b"\xff" * 300 in data for _, _, data, _ in first)
    assert b"" in {data for _, _, data, _ in first}


def test_corpus_covers_vectors_and_every_namespace_in_both_modes():
    vectors = fuzz.load_vectors()
    corpus = fuzz.build_corpus(1, docs_per_root=1)
    if vectors:
        assert sum(s.origin == "vector" for s in corpus) == len(vectors)
        for ns, frag, data, doc in vectors:
            assert exi.decode(ns, data, fragment=frag) == doc
    assert {(s.ns, s.fragment) for s in corpus} == {(ns, f) for ns in exi.NAMESPACES for f in (False, True)}
    for s in corpus[:: max(1, len(corpus) // 200)]:
        assert fuzz.check_input(s.ns, s.fragment, s.data) == "roundtrip_ok"


def test_bit_helpers():
    assert fuzz.bits_insert(b"\x80", 1, 0b11, 2) == b"\xe0\x00"
    assert fuzz.bits_delete(b"\xe0\x00", 1, 2) == b"\x80\x00"
    assert fuzz.varint(0x7F) == b"\x7f"
    assert fuzz.varint(2**32) == b"\x80\x80\x80\x80\x10"
    assert fuzz.compact_hex("80" + "ff" * 5000 + "00", 100).startswith("80<ff*5000>00")


# --- the watchdogs: checks injected in place of the decoder (inherited by the forked workers); they do
# not decode, so that these tests see only the injected misbehaviour, not codec bugs -----------------
_TARGET: bytes = b""


def _stub(ns: str, fragment: bool, data: bytes) -> str:
    return "decode_error"


def _hang_on_target(ns: str, fragment: bool, data: bytes) -> str:
    if data == _TARGET:
        time.sleep(60)
    return _stub(ns, fragment, data)


def _allocate_on_target(ns: str, fragment: bool, data: bytes) -> str:
    if data == _TARGET:
        bytearray(8 * 1024**3)  # far past the workers' address-space limit
    return _stub(ns, fragment, data)


def _die_on_target(ns: str, fragment: bool, data: bytes) -> str:
    if data == _TARGET:
        os._exit(3)
    return _stub(ns, fragment, data)


def _set_target(index: int) -> None:
    global _TARGET
    corpus = fuzz.build_corpus(SEED)
    _TARGET = fuzz.make_input(corpus, SEED, index)[2]
    assert sum(fuzz.make_input(corpus, SEED, i)[2] == _TARGET for i in range(40)) == 1


@needs_fork
@pytest.mark.timeout(60)
def test_watchdog_kills_a_hanging_input_and_goes_on():
    _set_target(7)
    t = time.monotonic()
    summary = fuzz.run(40, seed=SEED, jobs=2, timeout=0.5, keep_going=True, progress=None,
                       check=_hang_on_target, out=lambda s: None)
    assert time.monotonic() - t < 20
    assert summary.signatures == {"hang": 1}
    assert summary.findings[0]["index"] == 7 and summary.findings[0]["hex"] == _TARGET.hex()
    assert summary.done == 40  # the killed worker was restarted after the hanging input
    assert summary.slowest >= 0.5 and summary.slowest_index == 7


@needs_fork
@pytest.mark.timeout(60)
def test_stops_at_the_first_finding_by_default():
    _set_target(3)
    summary = fuzz.run(10_000, seed=SEED, jobs=2, timeout=0.5, progress=None,
                       check=_hang_on_target, out=lambda s: None)
    assert summary.stopped_early and summary.signatures == {"hang": 1}
    assert "STOPPED EARLY" in summary.line()


@needs_fork
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="address-space limit needs /proc")
@pytest.mark.timeout(60)
def test_memory_limit_turns_a_huge_allocation_into_a_finding():
    _set_target(5)
    summary = fuzz.run(20, seed=SEED, jobs=1, mem_limit_mb=512, keep_going=True, progress=None,
                       check=_allocate_on_target, out=lambda s: None)
    assert [f["kind"] for f in summary.findings] == ["memory"]
    assert summary.findings[0]["index"] == 5 and "MemoryError" in summary.findings[0]["error"]
    assert summary.done == 20


@needs_fork
@pytest.mark.timeout(60)
def test_a_dying_worker_is_a_finding():
    _set_target(4)
    summary = fuzz.run(30, seed=SEED, jobs=2, keep_going=True, progress=None,
                       check=_die_on_target, out=lambda s: None)
    assert summary.signatures == {"crash(exit 3)": 1}
    assert summary.findings[0]["index"] == 4
    assert summary.done == 30


def test_command_line_small_run(capsys):
    rc = fuzz.main(["--count", "300", "--seed", str(SEED), "--jobs", "1", "--progress", "0.01"])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("SUMMARY inputs=300/300 ")
    for part in ("decoded_ok=", "exi_decode_error=", "findings=", "rate=", "slowest=", "peak_rss="):
        assert part in last
    assert rc == (1 if "findings=0 " not in last else 0)
