"""The grid-signal model: a signal is read and checked whole (inverted or overlapping intervals, non-finite or
absurd values, unknown fields and targets are refused with a typed error naming the field) and a refused batch
leaves the book as it was; the book resolves limits, setpoints and prices per step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from v2gstack.grid.model import (
    Opt,
    SignalBook,
    SignalError,
    Topology,
    UnknownSignal,
    UnknownTarget,
    parse_signal,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPOLOGY = Topology("site", {"depot": frozenset({"CS1", "CS2"})}, frozenset({"CS1", "CS2", "CS3"}))


def iv(start_min: int, end_min: int, **values: float) -> dict[str, object]:
    return {"start": (T0 + timedelta(minutes=start_min)).isoformat(), "end": (T0 + timedelta(minutes=end_min))
            .isoformat(), **values}


def sig(sid: str, *intervals: dict[str, object], target: dict[str, str] | None = None, **kw: object) -> dict:
    return {"id": sid, "target": target or {"kind": "site", "id": "site"}, "intervals": list(intervals), **kw}


def test_a_signal_round_trips() -> None:
    s = parse_signal(sig("dr-1", iv(15, 30, setpointW=-50_000), iv(0, 15, importLimitW=100_000, price=0.3)))
    assert [i.start for i in s.intervals] == [T0, T0 + timedelta(minutes=15)]  # sorted
    assert parse_signal(s.to_dict()) == s
    assert s.opt is Opt.IN and s.source == "operator"


@pytest.mark.parametrize(("raw", "code", "path"), [
    (sig("a", iv(30, 15, setpointW=1)), "inverted-interval", "intervals[0]"),
    (sig("a", iv(0, 0, setpointW=1)), "inverted-interval", "intervals[0]"),
    (sig("a", iv(0, 30, setpointW=1), iv(15, 45, price=1)), "overlapping-intervals", "intervals"),
    (sig("a"), "no-intervals", "intervals"),
    (sig("a", iv(0, 15)), "empty-interval", "intervals[0]"),
    (sig("a", iv(0, 15, setpointW=float("nan"))), "not-finite", "intervals[0].setpointW"),
    (sig("a", iv(0, 15, importLimitW=float("inf"))), "not-finite", "intervals[0].importLimitW"),
    (sig("a", iv(0, 15, importLimitW=-5)), "out-of-range", "intervals[0].importLimitW"),
    (sig("a", iv(0, 15, setpointW=-5e9)), "out-of-range", "intervals[0].setpointW"),
    (sig("a", iv(0, 15, price=1e6)), "out-of-range", "intervals[0].price"),
    (sig("a", iv(0, 15, setpointW="10")), "not-a-number", "intervals[0].setpointW"),
    (sig("a", iv(0, 15, setpointW=True)), "not-a-number", "intervals[0].setpointW"),
    (sig("a", iv(0, 15, setpointW=-9_000, exportLimitW=5_000)), "inconsistent", "intervals[0]"),
    (sig("a", iv(0, 15, setpointW=1, watts=3)), "unknown-field", "intervals[0]"),
    (sig("a", {"start": "2026-03-01T12:00:00", "durationS": 60, "price": 1}), "bad-time", "intervals[0].start"),
    (sig("a", {"start": "yesterday", "durationS": 60, "price": 1}), "bad-time", "intervals[0].start"),
    (sig("a", iv(0, 60 * 24 * 8, price=1)), "out-of-range", "intervals[0]"),
    (sig("a", iv(0, 15, price=1), target={"kind": "planet", "id": "x"}), "bad-target", "target.kind"),
    (sig("", iv(0, 15, price=1)), "bad-id", "id"),
    (sig("a", iv(0, 15, price=1), opt="maybe"), "bad-opt", "opt"),
    (sig("a", iv(0, 15, price=1), priority=-1), "out-of-range", "priority"),
    ({**sig("a", iv(0, 15, price=1)), "colour": "red"}, "unknown-field", ""),
])
def test_bad_signals_are_refused_with_their_rule(raw: dict, code: str, path: str) -> None:
    with pytest.raises(SignalError) as e:
        parse_signal(raw)
    assert (e.value.code, e.value.path) == (code, path)
    assert e.value.to_dict()["detail"]


def test_unknown_targets_refuse_the_whole_batch() -> None:
    book = SignalBook(TOPOLOGY)
    book.apply([parse_signal(sig("keep", iv(0, 15, price=0.2)))])
    good = parse_signal(sig("g", iv(0, 15, importLimitW=1000), target={"kind": "group", "id": "depot"}))
    bad = parse_signal(sig("b", iv(0, 15, importLimitW=1000), target={"kind": "station", "id": "CS9"}))
    with pytest.raises(UnknownTarget) as e:
        book.apply([good, bad])
    assert e.value.path == "signals[1].target"
    assert list(book.signals) == ["keep"]  # nothing half-applied
    with pytest.raises(UnknownTarget):
        book.apply([parse_signal(sig("s", iv(0, 15, price=1), target={"kind": "site", "id": "other"}))])
    with pytest.raises(SignalError, match="twice"):
        book.apply([good, good])
    assert list(book.signals) == ["keep"]


def test_modifications_opt_and_cancel() -> None:
    book = SignalBook(TOPOLOGY)
    book.apply([parse_signal(sig("a", iv(0, 15, setpointW=-1000), modification=2))])
    with pytest.raises(SignalError) as e:
        book.apply([parse_signal(sig("a", iv(0, 15, setpointW=-9000), modification=1))])
    assert e.value.code == "stale-modification" and book.signals["a"].intervals[0].setpoint_w == -1000
    book.apply([parse_signal(sig("a", iv(0, 15, setpointW=-2000), modification=3))])
    assert book.signals["a"].intervals[0].setpoint_w == -2000
    book.set_opt("a", Opt.OUT)
    assert book.steps(T0, timedelta(minutes=15), 2)[1] == []  # opted out: not scheduled
    with pytest.raises(UnknownSignal):
        book.set_opt("zz", Opt.IN)
    book.cancel("a")
    with pytest.raises(UnknownSignal):
        book.cancel("a")


def test_steps_combine_limits_setpoints_and_prices() -> None:
    book = SignalBook(TOPOLOGY)
    book.apply([
        parse_signal(sig("lim", iv(0, 30, importLimitW=80_000), iv(30, 60, importLimitW=60_000, price=0.1))),
        parse_signal(sig("lim2", iv(15, 45, importLimitW=70_000))),
        parse_signal(sig("sp-low", iv(0, 60, setpointW=-10_000, price=0.3))),
        parse_signal(sig("sp-high", iv(15, 30, setpointW=-50_000), priority=5)),
        parse_signal(sig("grp", iv(0, 15, exportLimitW=5_000), target={"kind": "group", "id": "depot"})),
    ])
    prices, scopes = book.steps(T0, timedelta(minutes=15), 5)
    site = next(s for s in scopes if s.stations is None)
    group = next(s for s in scopes if s.stations == frozenset({"CS1", "CS2"}))
    assert site.import_limit_w == [80_000, 70_000, 60_000, 60_000, None]
    assert site.setpoint_w == [-10_000, -50_000, -10_000, -10_000, None]
    assert group.export_limit_w == [5_000, None, None, None, None]
    assert prices == [0.3, 0.3, 0.1, 0.1, None]  # same priority: the later-starting interval wins at steps 2-3
    book.expire(T0 + timedelta(minutes=45))
    assert "lim2" not in book.signals and "lim" in book.signals
