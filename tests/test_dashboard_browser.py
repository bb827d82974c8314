"""The dashboard in headless Chromium against our CSMS, station and EV on loopback: log in, watch a live session's
power curve move, open its cross-protocol timeline, stop it remotely and see it end, CSRF refusal, log out; no console
errors. Screenshots under test-artifacts/dashboard/ (and, with V2GSTACK_DOCS_SCREENSHOT=1, docs/dashboard.png)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import bridged
from helpers.browser import ARTIFACTS, chromium, console_errors
from helpers.csms import TOKEN, our_station, running_csms
from helpers.dashboard import USER_PASSWORD, add_user, served
from helpers.grid import signal
from helpers.wait import until

from v2gstack.csms.grid_control import GridConfig, GridControl

pytestmark = pytest.mark.timeout(180)
DOCS = Path(__file__).resolve().parents[1] / "docs"


async def wait_for(web: Any, what: str, check: Callable[[], Any], limit: float = 30.0) -> Any:
    """Poll a browser-side condition from a thread (the event loop keeps serving); fail with `what` if it never
    holds (a safety net, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            await asyncio.to_thread(web.save_screenshot, str(ARTIFACTS / "failed.png"))
            raise AssertionError(f"the dashboard never showed {what}")
        await asyncio.sleep(0.2)


def _js(web: Any, script: str, *args: Any) -> Any:
    return web.execute_script(script, *args)


async def test_dashboard_live_session_timeline_remote_stop(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as web:
        async with bridged(tmp_path, evses=1) as rig:
            add_user(rig.csms, "olga", "operator")
            async with served(rig.csms, trace_dir=rig.trace_dir) as url:
                def run(fn: Callable[..., Any], *a: Any) -> Any:
                    return asyncio.to_thread(fn, *a)

                await run(web.get, url + "/")
                await wait_for(web, "the login form", lambda: web.find_element(By.ID, "login-name").is_displayed())
                await run(web.find_element(By.ID, "login-name").send_keys, "olga")
                await run(web.find_element(By.ID, "login-password").send_keys, "wrong password!")
                await run(web.find_element(By.ID, "login-submit").click)
                await wait_for(web, "the refusal", lambda: "Wrong" in web.find_element(By.ID, "login-error").text)
                await run(web.find_element(By.ID, "login-password").send_keys, USER_PASSWORD)
                await run(web.find_element(By.ID, "login-submit").click)
                await wait_for(web, "the app", lambda: web.find_element(By.ID, "app").is_displayed())
                assert "olga (operator)" in web.find_element(By.ID, "who").text

                ev = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=0, interval=0.05))  # until the EVSE stops
                key = await wait_for(web, "a live session", lambda: _js(
                    web, "const r = document.querySelector('#sessions tbody tr'); return r && r.dataset.key"))
                spark = "return +document.querySelector('#sessions tbody tr canvas').dataset.points"
                first = await wait_for(web, "power points", lambda: _js(web, spark) >= 2 and _js(web, spark))
                await wait_for(web, "the power curve move", lambda: _js(web, spark) > first + 2)
                power = await run(lambda: web.find_element(By.CSS_SELECTOR, "#sessions tbody tr .p-import").text)
                assert float(power) > 0  # kW, the EV is charging
                station_row = await run(lambda: web.find_element(By.CSS_SELECTOR,
                                                                 "#stations tr[data-station=CS1]").text)
                assert "online" in station_row
                await run(web.save_screenshot, str(ARTIFACTS / "overview.png"))
                if os.environ.get("V2GSTACK_DOCS_SCREENSHOT"):
                    await run(web.save_screenshot, str(DOCS / "dashboard.png"))

                # CSRF: the page's own script, with the cookie, but without the token: refused
                status = await run(web.execute_async_script, """
                    const done = arguments[arguments.length - 1];
                    fetch('/api/stations/CS1/request-stop', {method: 'POST', credentials: 'same-origin',
                      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({transactionId: 'x'})})
                      .then(r => done(r.status));""")
                assert status == 403
                assert rig.csms.active_transaction("CS1", 1) is not None  # nothing was stopped

                await run(web.find_element(By.CSS_SELECTOR, "#sessions tbody tr a.open-session").click)
                await wait_for(web, "the timeline", lambda: len(web.find_elements(By.CSS_SELECTOR,
                                                                                   "#timeline tbody tr")) > 5)
                protocols = set(await run(lambda: [td.text for td in web.find_elements(
                    By.CSS_SELECTOR, "#timeline tbody td:nth-child(3)")]))
                assert "ocpp" in protocols and len(protocols) >= 2, protocols  # ISO 15118 and OCPP interleaved
                await run(web.find_element(By.CSS_SELECTOR, "#timeline tbody tr:nth-child(3)").click)
                detail = await run(lambda: web.find_element(By.ID, "timeline-detail").text)
                assert detail.startswith("{")
                await run(web.save_screenshot, str(ARTIFACTS / "session.png"))

                await run(web.find_element(By.ID, "session-stop").click)
                result = await asyncio.wait_for(ev, 60)
                assert result.ok, result.reason
                await wait_for(web, "the session end", lambda: "state Ended" in web.find_element(
                    By.ID, "session-facts").text)
                tx_id = key.split("/", 1)[1]
                assert rig.csms.store.transaction("CS1", tx_id)["state"] == "Ended"
                assert any(a["actor"] == "olga" and a["action"] == "RequestStopTransaction" and a["status"] == 200
                           for a in rig.csms.store.audit(limit=20))
                await run(web.save_screenshot, str(ARTIFACTS / "session-ended.png"))
                if os.environ.get("V2GSTACK_DOCS_SCREENSHOT"):
                    await run(web.save_screenshot, str(DOCS / "dashboard-session.png"))

                await run(web.get, url + "/#/pki")
                await wait_for(web, "the Plug & Charge page",
                               lambda: web.find_element(By.ID, "page-pki").is_displayed())
                await run(web.get, url + "/#/")
                await wait_for(web, "the app again", lambda: web.find_element(By.ID, "app").is_displayed())
                await run(web.find_element(By.ID, "logout").click)
                await wait_for(web, "the login form after logout",
                               lambda: web.find_element(By.ID, "login").is_displayed())
                status = await run(web.execute_async_script, """
                    const done = arguments[arguments.length - 1];
                    fetch('/api/stations', {credentials: 'same-origin'}).then(r => done(r.status));""")
                assert status == 401
                expected = ("(Unauthorized)", "request-stop - Failed to load resource: the server responded with a "
                            "status of 403")  # the refused login, the CSRF probe, the probe after logout
                errors = [e for e in await run(console_errors, web) if not any(x in e for x in expected)]
                assert not errors, errors


async def test_dashboard_grid_page_and_a_viewer_without_commands(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as web:
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms) as st:
            grid = GridControl(csms, GridConfig(dispatch=True))
            grid.start()
            add_user(csms, "vic", "viewer")
            await st.wait_accepted()
            st.set_ev(1, power_w=11_000.0)
            await st.plug_in(1)
            assert (await st.present_token(1, TOKEN))["status"] == "Accepted"
            grid.apply([signal("cap", importLimitW=4_000)], source="operator")
            await until(lambda: st.smart_charging.limit_w(1) == 4_000.0)
            async with served(csms) as url:
                def run(fn: Callable[..., Any], *a: Any) -> Any:
                    return asyncio.to_thread(fn, *a)

                await run(web.get, url + "/#/grid")
                await wait_for(web, "the login form", lambda: web.find_element(By.ID, "login-name").is_displayed())
                await run(web.find_element(By.ID, "login-name").send_keys, "vic")
                await run(web.find_element(By.ID, "login-password").send_keys, USER_PASSWORD)
                await run(web.find_element(By.ID, "login-submit").click)
                await wait_for(web, "the grid page", lambda: web.find_element(By.ID, "page-grid").is_displayed())
                await wait_for(web, "the signal", lambda: "cap" in web.find_element(By.ID, "grid-signals").text)
                assert "importLimitW=4000" in web.find_element(By.ID, "grid-signals").text
                points = "return +document.getElementById('grid-chart').dataset.points"
                await wait_for(web, "the aggregate power", lambda: _js(web, points) >= 3)
                await run(web.save_screenshot, str(ARTIFACTS / "grid.png"))
                await run(web.get, url + "/#/")
                await wait_for(web, "the live session", lambda: web.find_elements(By.CSS_SELECTOR,
                                                                                    "#sessions tbody tr"))
                await wait_for(web, "the station", lambda: web.find_elements(By.CSS_SELECTOR,
                                                                               "#stations tbody tr"))
                assert not web.find_elements(By.CSS_SELECTOR, "#sessions button.stop")  # a viewer gets no buttons
                assert not web.find_elements(By.CSS_SELECTOR, "#stations button")
                assert not await run(console_errors, web)
