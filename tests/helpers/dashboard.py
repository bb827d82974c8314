"""Helpers for the dashboard and login tests: the CSMS API served by uvicorn (optionally over TLS) and users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from v2gstack.csms.api import create_app
from v2gstack.csms.auth import Role
from v2gstack.csms.service import Csms
from v2gstack.csms.users import Users

USER_PASSWORD = "correct horse battery"


def add_user(csms: Csms, name: str, role: str, password: str = USER_PASSWORD) -> None:
    """A dashboard user of `role` in this CSMS's database."""
    Users(csms.store).add(name, Role.parse(role), password)


@asynccontextmanager
async def served(csms: Csms, *, cert: Path | None = None, key: Path | None = None,
                 **app_options: Any) -> AsyncIterator[str]:
    """The CSMS API and dashboard served by uvicorn on a free loopback port (HTTPS with cert/key); its base URL."""
    app = create_app(csms, **app_options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off",
                                           ssl_certfile=str(cert) if cert else None,
                                           ssl_keyfile=str(key) if key else None, timeout_graceful_shutdown=2))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"{'https' if cert else 'http'}://127.0.0.1:{port}"
    finally:
        app.state.close_streams()
        server.should_exit = True
        await task
