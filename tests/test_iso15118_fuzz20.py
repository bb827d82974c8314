"""The ISO 15118-20 SECC fuzzer (tools/secc20_fuzz.py) at a small scale, and a check that it catches what it is
meant to catch (an exception out of a session, a healthy session that fails)."""

from __future__ import annotations

import logging

import pytest
from helpers.tools import secc20_fuzz as fuzz

from v2gstack.iso15118.secc20 import Secc20

SEED = 20240611


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    """The recorded sessions."""
    return fuzz.Corpus.build()


@pytest.mark.timeout(300)
def test_semantically_wrong_requests_never_escape_a_session(corpus, caplog) -> None:  # type: ignore[no-untyped-def]
    """300 cases: no exception out of the SECC, every answer encodes, one end each, the healthy sessions charge."""
    caplog.set_level(logging.ERROR)
    findings = [(i, p) for i in range(300) if (p := fuzz.check(corpus, SEED, i)) is not None]
    assert not findings, findings[:3]
    assert len(corpus.scripts) == 34 and len(corpus.requests) > 500


def test_the_fuzzer_reports_an_escaping_exception(corpus, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """A handler bug (here: ServiceDetail raising RuntimeError) is found and its traceback reported."""
    caplog.set_level(logging.ERROR)

    def broken(self: Secc20, body: dict) -> dict:  # type: ignore[type-arg]
        raise RuntimeError("planted bug")

    monkeypatch.setattr(Secc20, "_service_detail", broken)
    results = [fuzz.check(corpus, SEED, i) for i in range(60)]
    assert any(r is not None and "planted bug" in r for r in results)


def test_replay_is_deterministic(corpus) -> None:  # type: ignore[no-untyped-def]
    """Case i is a pure function of (seed, i)."""
    first: list[str] = []
    second: list[str] = []
    fuzz.run_case(corpus, SEED, 17, first)
    fuzz.run_case(corpus, SEED, 17, second)
    assert first == second and first
