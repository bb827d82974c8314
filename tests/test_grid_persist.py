"""Grid signals survive a CSMS restart: kept in the CSMS's database (table grid_signals) on every change, read back
when grid control starts; a cancelled signal stays gone, one that ended meanwhile is dropped, an opt-out is kept,
the times to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.csms import running_csms
from helpers.grid import signal
from helpers.wait import until

from v2gstack.csms.grid_control import GridControl
from v2gstack.grid.model import Opt

pytestmark = pytest.mark.timeout(60)


async def test_signals_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    async with running_csms(url) as csms:
        grid = GridControl(csms)
        assert grid.book.signals == {}  # a new database: nothing kept
        grid.apply([signal("cap", minutes=60, importLimitW=4_000), signal("gone", minutes=60, exportLimitW=1_000),
                    signal("short", minutes=0.01, setpointW=-2_000),
                    signal("cs1", minutes=60, target={"kind": "station", "id": "CS1"}, setpointW=500)],
                   source="operator")
        grid.cancel("gone")
        grid.set_opt("cs1", Opt.OUT)
        before = {sid: s for sid, s in grid.book.signals.items() if sid != "short"}
        short_end = grid.book.signals["short"].end
        await grid.close()
    await until(lambda: datetime.now(UTC) > short_end, 10)  # "short" ends while the CSMS is down

    async with running_csms(url) as csms:
        grid = GridControl(csms)
        assert grid.book.signals == before  # the same signals, to the microsecond, the opt-out kept
        assert grid.book.signals["cs1"].opt is Opt.OUT
        cap = grid.book.signals["cap"].intervals[0]
        _, scopes = grid.book.steps(cap.start + timedelta(seconds=1), timedelta(minutes=1), 1)
        assert [s.import_limit_w[0] for s in scopes if s.stations is None] == [4_000.0]  # planned with again
        grid.cancel("cap")
        await grid.close()

    async with running_csms(url) as csms:  # a cancellation is kept too
        assert set(GridControl(csms).book.signals) == {"cs1"}
