"""The certificate expiry check: which installed root certificates run out soon (a singleton in a cluster).

Every `interval_s` it reads the trust anchors (csms/store.py) and logs a warning for each one whose notAfter lies
within `warn_days`; in a cluster the findings also go on the event feed (`<prefix>.evt.cert.<fingerprint>`, one
message per certificate and day, so a leader change does not repeat them). One node runs it (csms/singletons.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..times import parse_rfc3339
from . import store as ops
from .worker import StoreWorker

log = logging.getLogger(__name__)

Finding = dict[str, Any]


def expiring(anchors: list[dict[str, Any]], now: datetime, warn_days: float) -> list[Finding]:
    """The anchors whose notAfter lies before now + warn_days (expired ones too), soonest first."""
    out = []
    for a in anchors:
        not_after = parse_rfc3339(a["notAfter"])
        if not_after <= now + timedelta(days=warn_days):
            out.append({"fingerprint": a["fingerprint"], "kind": a["kind"], "subject": a["subject"],
                        "notAfter": a["notAfter"], "days": round((not_after - now).total_seconds() / 86400, 1)})
    return sorted(out, key=lambda f: f["days"])


class CertificateExpiryCheck:
    """The periodic check: start()/stop() (the singleton's job), `runs` and `last` for whoever looks."""

    def __init__(self, worker: StoreWorker, interval_s: float = 3600.0, warn_days: float = 30.0,
                 publish: Callable[[Finding], Awaitable[Any]] | None = None) -> None:
        self.worker = worker
        self.interval_s = interval_s
        self.warn_days = warn_days
        self.publish = publish
        self.runs = 0
        self.last: list[Finding] = []
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> list[Finding]:
        """One check now."""
        anchors = await self.worker.read(ops.op_trust_anchors, None)
        found = expiring(anchors, datetime.now(UTC), self.warn_days)
        for f in found:
            log.warning("certificate %s (%s, %s) %s", f["subject"], f["kind"], f["fingerprint"][:16],
                        f"expired {-f['days']} days ago" if f["days"] < 0 else f"expires in {f['days']} days")
            if self.publish is not None:
                await self.publish(f)
        self.runs += 1
        self.last = found
        return found

    async def start(self, epoch: int = 0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="certificate-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("certificate expiry check failed")
            await asyncio.sleep(self.interval_s)
