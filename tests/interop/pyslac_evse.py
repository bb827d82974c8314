"""pyslac's EVSE side on one interface, for the interop test (runs in .venv-slac, never in v2gstack's venv).

    python pyslac_evse.py IFACE [SETTLE_SECONDS]

Sets a key on the (simulated) modem, reports the pilot at B, and waits for pyslac's matching task to reach Matched;
prints 'PYSLAC MATCHED pev=<mac> nmk=<hex> nid=<hex>' and exits 0, or exits 1 when the task ends unmatched.
pyslac sleeps SLAC_SETTLE_TIME (10 s) after CM_SET_KEY.CNF for a real modem to settle; SETTLE_SECONDS shortens it.
"""

from __future__ import annotations

import asyncio
import sys

import pyslac.session as session
from pyslac.enums import STATE_MATCHED
from pyslac.environment import Config


async def main(iface: str, settle: float) -> int:
    session.SLAC_SETTLE_TIME = settle  # the module-level pause after CM_SET_KEY.CNF (a real modem needs it)
    config = Config(slac_init_timeout=50.0, slac_atten_results_timeout=None, log_level="DEBUG")
    slac = session.SlacEvseSession("DE*PYS*E0001", iface, config)
    await slac.evse_set_key()
    print("PYSLAC READY", flush=True)
    controller = session.SlacSessionController()
    await controller.process_cp_state(slac, "B")
    while slac.state != STATE_MATCHED:
        task = slac.matching_process_task
        if task is None or task.done():
            print("PYSLAC UNMATCHED", flush=True)
            return 1
        await asyncio.sleep(0.05)
    print(f"PYSLAC MATCHED pev={slac.pev_mac.hex()} nmk={slac.nmk.hex()} nid={slac.nid.hex()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)))
