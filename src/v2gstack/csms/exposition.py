"""A small Prometheus text exposition (format 0.0.4): counters, gauges and histograms with labels, no dependency.

Enough for the CSMS's own metrics (csms/metrics.py); `prometheus_client` would bring a process-global registry and
multiprocess machinery the CSMS does not need. Label values are escaped as the format requires (backslash, double
quote, newline); series are written sorted, so a scrape is stable.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_, labels

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count per label set (name it with the `_total` suffix)."""

    kind = "counter"

    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help_, labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add `amount` to the series of these label values."""
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        """The current value of a series (0 when never incremented)."""
        return self.values.get(labels, 0.0)

    def lines(self) -> list[str]:
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}"
                                for k, v in sorted(self.values.items())]


class Gauge(_Metric):
    """A value read at scrape time from `collect` (label values -> value)."""

    kind = "gauge"

    def __init__(self, name: str, help_: str, labels: tuple[str, ...],
                 collect: Callable[[], Iterable[tuple[LabelValues, float]]]) -> None:
        super().__init__(name, help_, labels)
        self.collect = collect

    def lines(self) -> list[str]:
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}"
                                for k, v in sorted(self.collect())]


class Histogram(_Metric):
    """Observations in cumulative buckets per label set, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        super().__init__(name, help_, labels)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[LabelValues, tuple[list[int], list[float]]] = {}  # per-bucket counts, [sum, count]

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation."""
        counts, total = self.series.setdefault(labels, ([0] * (len(self.buckets) + 1), [0.0, 0.0]))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        total[0] += value
        total[1] += 1

    def count(self, *labels: str) -> int:
        """How many observations a series has."""
        found = self.series.get(labels)
        return int(found[1][1]) if found else 0

    def lines(self) -> list[str]:
        out = self.header()
        for key, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                running += n
                le = 'le="' + _num(bound) + '"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total[0])}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {int(total[1])}")
        return out


def render(metrics: Iterable[_Metric]) -> str:
    """The exposition text of these metrics."""
    return "\n".join(line for m in metrics for line in m.lines()) + "\n"
