"""The dashboard's endpoints over a real socket with 1,000 registered stations: the pages and their security headers,
the live event stream (only what changed is sent), the summary; a viewer reads them, nobody else."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from helpers.csms import PASSWORD, api_token, auth, our_station, running_csms
from helpers.dashboard import served
from helpers.wait import until

from v2gstack.csms.dashboard.live import Subscriber, live_hub


async def _first_tick(web: httpx.AsyncClient, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    async with web.stream("GET", "/api/live", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "tick":
                return json.loads(line[6:])
    raise AssertionError("no tick")


async def test_live_stream_sends_only_changes_with_1000_stations(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD}) as csms:
        for n in range(2, 1001):
            csms.store.add_station(f"CS{n}", None)  # no password: registering is quick
        hub = live_hub(csms)
        async with served(csms) as url, httpx.AsyncClient(base_url=url) as web:
            page = await web.get("/")
            assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
            assert (await web.get("/static/app.js")).headers["content-type"].startswith("text/javascript")
            assert (await web.get("/static/../api.py")).status_code == 404
            assert (await web.get("/api/live")).status_code == 401  # the pages are public, the data is not
            viewer = auth(api_token(csms, "viewer"))
            assert len((await web.get("/api/stations", headers=viewer)).json()) == 1000
            sub = Subscriber()
            hub.tick(sub)  # a subscriber's first tick: the page loads the stations itself
            async with our_station(csms) as st:
                await st.wait_accepted()
                await until(lambda: hub.connectors.get("CS1"))
                tick = hub.tick(sub)
                assert [s["id"] for s in tick["stations"]] == ["CS1"]  # one of 1,000 changed: one row sent
                assert tick["stations"][0]["online"] and tick["stations"][0]["connectorStatus"]
                assert tick["totals"]["stationsOnline"] == 1
                idle = hub.tick(sub)
                assert idle["stations"] == [] and len(json.dumps(idle)) < 300  # nothing new: a few bytes
                first = await _first_tick(web, viewer)
                assert first["totals"]["stationsOnline"] == 1 and first["stations"] == []
                summary = (await web.get("/api/dashboard/summary", headers=viewer)).json()
                assert summary["stationsOnline"] == 1
            await until(lambda: not csms.online("CS1"))
            gone = hub.tick(sub)
            assert [(s["id"], s["online"]) for s in gone["stations"]] == [("CS1", False)]
