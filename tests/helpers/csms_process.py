"""A CSMS in its own process (`python -m v2gstack csms`), for tests that kill it with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_csms(db_url: str, port: int, log: Path, node_id: str | None = None) -> subprocess.Popen[bytes]:
    """`v2gstack csms` on `db_url`, stations at ws://127.0.0.1:<port>/ocpp, output appended to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "v2gstack", "csms", "--db", db_url, "--port", str(port), "--api-port", "0",
         "--heartbeat-interval", "60", *(["--node-id", node_id] if node_id else [])],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_csms(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM and wait (a clean exit, else the log's end in the error); kill if it hangs."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        assert proc.wait(15) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()


async def wait_listening(port: int, timeout: float = 60.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:<port>."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
