"""The rule that decides a renegotiation (station/bridge/offer.py), against hand-made offers: lower anywhere over what
is left of the offer renegotiates, equal or higher does not, what lies past the offer's end does not count, time
gone by shifts the old offer, and an offer under a setpoint renegotiates on any change."""

from __future__ import annotations

from v2gstack.iso15118.model import PMaxEntry
from v2gstack.iso15118.model20 import PowerEntry, PowerSchedule, ScheduleTuple
from v2gstack.station.bridge.offer import Offer, outdated, pmax_offer, tuple_offer

DAY = 86_400


def _pmax(at: float, *steps: tuple[int, float]) -> Offer:
    entries = [PMaxEntry(s, p) for s, p in steps]
    last = entries[-1]
    entries[-1] = PMaxEntry(last.start, last.pmax, DAY - last.start)
    return pmax_offer(at, entries)


def test_lower_anywhere_renegotiates_equal_or_higher_does_not() -> None:
    old = _pmax(0.0, (0, 50_000.0))
    assert outdated(old, _pmax(0.0, (0, 50_000.0))) is None
    assert outdated(old, _pmax(0.0, (0, 50_000.4))) is None
    assert outdated(old, _pmax(0.0, (0, 49_999.5))) is None  # within the tolerance
    why = outdated(old, _pmax(0.0, (0, 50_000.0), (3600, 11_000.0)))  # lower from an hour on
    assert why == "charging 11000 W instead of 50000 W offered, 3600 s from now"


def test_time_gone_by_shifts_the_old_offer() -> None:
    old = _pmax(0.0, (0, 11_000.0), (600, 50_000.0))  # 11 kW for 10 minutes, then 50 kW
    # 700 s later the car is in the 50 kW part: a flat 22 kW is lower from now on
    assert outdated(old, _pmax(700.0, (0, 22_000.0))) == "charging 22000 W instead of 50000 W offered, 0 s from now"
    # 100 s later: 11 kW for 500 s more, then 50 kW; the same shape from now fits
    assert outdated(old, _pmax(100.0, (0, 11_000.0), (500, 50_000.0))) is None
    # ... and one ending the 11 kW part 10 s early is higher there: still fits
    assert outdated(old, _pmax(100.0, (0, 11_000.0), (490, 50_000.0))) is None
    # past the offer's end nothing counts
    assert outdated(old, _pmax(DAY + 1.0, (0, 1_000.0))) is None


def _tuple(charging: list[tuple[int, float]], discharging: list[tuple[int, float]] | None = None) -> ScheduleTuple:
    def schedule(entries: list[tuple[int, float]]) -> PowerSchedule:
        return PowerSchedule(tuple(PowerEntry(d, p) for d, p in entries))
    return ScheduleTuple(1, schedule(charging), schedule(discharging) if discharging is not None else None)


def test_iso20_discharging_and_setpoints() -> None:
    old = tuple_offer(0.0, _tuple([(DAY, 50_000.0)], [(DAY, 10_000.0)]))
    assert outdated(old, tuple_offer(0.0, _tuple([(DAY, 50_000.0)], [(DAY, 10_000.0)]))) is None
    why = outdated(old, tuple_offer(0.0, _tuple([(DAY, 50_000.0)], [(DAY, 5_000.0)])))
    assert why is not None and why.startswith("discharging 5000 W")
    # under a setpoint the car follows the powers: a higher one is a change it must know too
    fixed = tuple_offer(0.0, _tuple([(DAY, 4_000.0)], [(DAY, 0.0)]), exact=True)
    assert outdated(fixed, tuple_offer(0.0, _tuple([(DAY, 6_000.0)], [(DAY, 0.0)]), exact=True)) is not None
    assert outdated(fixed, tuple_offer(0.0, _tuple([(DAY, 4_000.0)], [(DAY, 0.0)]), exact=True)) is None
