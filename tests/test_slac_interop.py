"""SLAC interop over the simulated Green PHY medium in network namespaces: pyslac's EVSE side (PyPI, in its own
virtualenv .venv-slac: `make slac-venv`) matches our EV, and a scapy-built EV frame sequence matches our EVSE."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import plc
from helpers.paths import ROOT

SLAC_PY = ROOT / ".venv-slac" / "bin" / "python"
INTEROP = ROOT / "tests" / "interop"
PY = [sys.executable, "-m", "v2gstack", "slac"]

pytestmark = [
    pytest.mark.skipif(plc.skip_reason() is not None, reason=str(plc.skip_reason())),
    pytest.mark.skipif(not SLAC_PY.exists(), reason="no .venv-slac with pyslac and scapy (make slac-venv)"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def seg():
    segment = plc.PlcSegment.create(1)
    yield segment
    segment.destroy()


def test_pyslac_evse_matches_our_ev(seg: plc.PlcSegment, tmp_path: Path) -> None:
    medium = seg.start_medium([20], tmp_path / "medium.log")
    plc.wait_for_text(tmp_path / "medium.log", "medium:", medium)
    evse = seg.evses[0]
    seg.start(evse.ns, [sys.executable, "-m", "v2gstack.slac.netdev", evse.iface], tmp_path / "offload.log").wait(20)
    py_log = tmp_path / "pyslac.log"
    pyslac = seg.start(evse.ns, [str(SLAC_PY), str(INTEROP / "pyslac_evse.py"), evse.iface], py_log)
    plc.wait_for_text(py_log, "PYSLAC READY", pyslac)
    ev = seg.evs[0]
    ev_log = tmp_path / "ev.log"
    rc = seg.start(ev.ns, [*PY, "ev", "--iface", ev.iface, "--sim-link", "--no-session"], ev_log).wait(60)
    assert rc == 0, ev_log.read_text()[-3000:] + "\n--- pyslac\n" + py_log.read_text()[-3000:]
    assert pyslac.wait(30) == 0, py_log.read_text()[-3000:]
    ours = ev_log.read_text()
    theirs = next(line for line in py_log.read_text().splitlines() if line.startswith("PYSLAC MATCHED"))
    fields = dict(item.split("=") for item in theirs.split()[2:])
    assert fields["pev"] == seg.mac(ev).replace(":", "")
    assert f"with EVSE {seg.mac(evse)}" in ours and f"NID {fields['nid']}" in ours


def test_scapy_ev_matches_our_evse(seg: plc.PlcSegment, tmp_path: Path) -> None:
    medium = seg.start_medium([20], tmp_path / "medium.log")
    plc.wait_for_text(tmp_path / "medium.log", "medium:", medium)
    evse = seg.evses[0]
    evse_log = tmp_path / "evse.log"
    ours = seg.start(evse.ns, [*PY, "evse", "--iface", evse.iface, "--sim-link", "--no-secc"], evse_log)
    plc.wait_for_text(evse_log, "waiting for a car", ours)
    ev = seg.evs[0]
    scapy_log = tmp_path / "scapy.log"
    rc = seg.start(ev.ns, [str(SLAC_PY), str(INTEROP / "scapy_ev.py"), ev.iface], scapy_log).wait(60)
    assert rc == 0, scapy_log.read_text()[-3000:] + "\n--- evse\n" + evse_log.read_text()[-3000:]
    assert ours.wait(30) == 0, evse_log.read_text()[-3000:]
    matched = next(line for line in scapy_log.read_text().splitlines() if line.startswith("SCAPY MATCHED"))
    assert f"evse={seg.mac(evse).replace(':', '')}" in matched
    assert f"SLAC: matched EV {seg.mac(ev)} with EVSE {seg.mac(evse)}" in evse_log.read_text()
    nid = matched.split("nid=")[1].split()[0]
    assert f"NID {nid}" in evse_log.read_text()
