"""Smoke test: bench/iso20_bench.py runs in its quick mode (no timings asserted, only that every part ran)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "iso20_bench.py"


def test_iso20_bench_quick_mode_runs_every_part() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-reference"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for kind in ("DC scheduled", "DC_BPT scheduled", "DC_BPT dynamic"):
        assert f"ours -20 {kind} (loopback, 3 loops): 1 sessions" in out, out
        assert f"| v2gstack -20 {kind}, loopback" in out, out
    assert "SECC load (paced" in out and "SECC load (flat out" in out, out
    assert out.count("(4 ended OK)") == 2, out  # every loaded session charged to its end
    assert "load average before/after" in out, out
