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


def test_reference_evcc_and_secc_charge_across_a_veth_pair(link: netns.VethLink, tmp_path: Path) -> None:
    argv, env = josev.secc_command(link.command(link.evse_ns, []), tmp_path / "secc", link.evse_if, ["din", "iso2"])
    secc = josev.start(argv, env, tmp_path / "secc", "secc.log")
    try:
        argv, env = josev.evcc_command(link.command(link.ev_ns, []), tmp_path / "evcc", link.ev_if, "iso2", "ac")
        evcc = josev.start(argv, env, tmp_path / "evcc", "evcc.log")
        try:
            rc = evcc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            evcc.kill()
            rc = None
        log = (tmp_path / "evcc" / "evcc.log").read_text(errors="replace")
        assert rc == 0, log[-3000:]
        assert "SessionStopRes received" in log
        assert '"SessionStopRes":{"ResponseCode":"OK"}' in log
    finally:
        secc.kill()
        secc.wait(10)
