"""The interop harness itself: the reference EVCC and SECC find each other by SDP across a veth pair.

Our EVCC and SECC are tested against the reference through this same harness (namespaces, link-local IPv6,
multicast SDP, the reference configured by its own environment variables); this test shows the harness is sound
before anything of ours is in the loop.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import josev, netns

pytestmark = [
    pytest.mark.reference,
    pytest.mark.skipif(netns.skip_reason() is not None, reason=str(netns.skip_reason())),
    pytest.mark.skipif(not josev.available(), reason="no .venv-ref (make ref-venv; needs Java)"),
]


@pytest.fixture
def link():
    veth = netns.VethLink.create()
    yield veth
    veth.destroy()


# the reference peers' own timeouts (2 s for most answers) that a loaded machine can make them miss with each other
REFERENCE_TIMED_OUT = "TimeoutError occurred. Waited for"


def _session(link: netns.VethLink, folder: Path) -> tuple[int | None, str]:
    """One reference EVCC session against the reference SECC across the link: the EVCC's exit code and log."""
    argv, env = josev.secc_command(link.command(link.evse_ns, []), folder / "secc", link.evse_if, ["din", "iso2"])
    secc = josev.start(argv, env, folder / "secc", "secc.log")
    try:
        argv, env = josev.evcc_command(link.command(link.ev_ns, []), folder / "evcc", link.ev_if, "iso2", "ac")
        evcc = josev.start(argv, env, folder / "evcc", "evcc.log")
        try:
            rc = evcc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            evcc.kill()
            rc = None
        return rc, (folder / "evcc" / "evcc.log").read_text(errors="replace")
    finally:
        secc.kill()
        secc.wait(10)


def test_reference_evcc_and_secc_charge_across_a_veth_pair(link: netns.VethLink, tmp_path: Path) -> None:
    rc, log = _session(link, tmp_path / "first")
    if rc != 0 and REFERENCE_TIMED_OUT in log:  # the two reference peers missed each other's timing: once more
        rc, log = _session(link, tmp_path / "second")
    assert rc == 0, log[-3000:]
    assert "SessionStopRes received" in log
    assert '"SessionStopRes":{"ResponseCode":"OK"}' in log
