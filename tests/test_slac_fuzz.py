"""The SLAC fuzzer (tools/slac_fuzz.py) at a small scale: no input raises, and the mutations reach every outcome."""

from __future__ import annotations

from helpers.tools import slac_fuzz as fuzz

from v2gstack.slac import frames as f


def test_fuzz_30000_inputs_raise_nothing_and_reach_every_message_type() -> None:
    summary = fuzz.run(30_000, seed=20261207, out=lambda s: None, progress=0)
    assert not summary.findings, summary.findings[0][1]
    assert summary.done == 30_000
    parsed = {k.removeprefix("frame:") for k in summary.outcomes if k.startswith("frame:")}
    assert parsed == {m.name for m in f.MMType}
    drops = {k.removeprefix("drop:") for k in summary.outcomes if k.startswith("drop:")}
    assert {"truncated_header", "not_homeplug", "unsupported_mmv", "unknown_mmtype", "fragmented",
            "truncated_payload", "trailing_data", "bad_application_type", "bad_mvf_length"} <= drops


def test_every_corpus_frame_round_trips() -> None:
    for data in fuzz.corpus():
        frame = f.parse(data)
        assert isinstance(frame, f.Frame), frame
        assert frame.encode() == data
