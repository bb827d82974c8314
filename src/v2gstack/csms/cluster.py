"""Commands across CSMS nodes: a CALL for a station connected to another node goes there by NATS request/reply.

Each node with a node id and a NATS URL answers requests on `<prefix>.cmd.<node_id>` (prefix `v2g` by default) by
sending the CALL to its own connection of the station (Csms.call) and replying with the answer, or with the
CommandError status and message. A node asked for a station it does not hold looks the station's owner record up
(csms/ownership.py) and forwards the command to that node. Core NATS request/reply: a lost request is a timed-out
command (504), as for a silent station.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

SUBJECT = "{prefix}.cmd.{node}"
CONNECT_TIMEOUT = 10.0  # s for the first connection to NATS
Payload = dict[str, Any]
LocalCall = Callable[[str, str, Payload], Awaitable[Payload]]


class ClusterError(RuntimeError):
    """The cluster cannot run: NATS is missing or unreachable."""


class RelayError(Exception):
    """A forwarded command failed: `status` and `message` as the owning node's CommandError had them."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


class CommandRelay:
    """This node's end of the command subjects: serve `<prefix>.cmd.<node_id>`, forward to other nodes; its NATS
    connection (`nc`) is the node's one connection, which the event feed uses too."""

    def __init__(self, url: str, node_id: str, local_call: LocalCall,
                 error_of: Callable[[Exception], tuple[int, str, dict[str, Any]] | None], prefix: str = "v2g") -> None:
        self.url = url
        self.node_id = node_id
        self.prefix = prefix
        self.local_call = local_call
        self.error_of = error_of  # a local failure -> (status, message, details), None for an unexpected one
        self._nc: Any = None

    async def start(self) -> None:
        """Connect to NATS and answer this node's subject; ClusterError when NATS is missing or unreachable."""
        try:
            import nats  # optional dependency (the `cluster` extra): only a node in a cluster needs it
        except ImportError:
            raise ClusterError("a CSMS cluster needs the NATS client: pip install 'v2gstack[cluster]'") from None
        try:  # the first connection must succeed soon; later losses are reconnected for ever
            self._nc = await asyncio.wait_for(nats.connect(
                self.url, connect_timeout=3, max_reconnect_attempts=-1, allow_reconnect=True,
                name=f"v2gstack-csms-{self.node_id}", error_cb=_nats_error), CONNECT_TIMEOUT)
        except Exception as e:
            raise ClusterError(f"NATS not reachable at {self.url} ({type(e).__name__}); a CSMS cluster needs "
                               "NATS") from None
        await self._nc.subscribe(self._subject(self.node_id), cb=self._serve)
        log.info("node %s answers commands on %s", self.node_id, self._subject(self.node_id))

    @property
    def nc(self) -> Any:
        """The NATS connection (after start)."""
        return self._nc

    def _subject(self, node: str) -> str:
        return SUBJECT.format(prefix=self.prefix, node=node)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    async def forward(self, node: str, station_id: str, action: str, payload: Payload, timeout: float) -> Payload:
        """Send the command to the node that holds the station and return the station's answer (RelayError)."""
        request = json.dumps({"stationId": station_id, "action": action, "payload": payload}).encode()
        try:
            msg = await self._nc.request(self._subject(node), request, timeout=timeout)
        except Exception as e:  # a timeout, no responders (the node is gone), NATS away
            raise RelayError(504, f"no answer to {action} for {station_id} from node {node}: "
                                  f"{type(e).__name__}") from None
        reply = json.loads(msg.data)
        if "error" in reply:
            err = reply["error"]
            raise RelayError(err["status"], err["message"], err.get("details"))
        return reply["answer"]

    async def _serve(self, msg: Any) -> None:
        """A command from another node for a station connected here."""
        try:
            req = json.loads(msg.data)
            answer = await self.local_call(req["stationId"], req["action"], req["payload"])
            reply: Payload = {"answer": answer}
        except Exception as e:
            known = self.error_of(e)
            if known is None:
                log.exception("command relayed to node %s failed", self.node_id)
                known = (500, f"node {self.node_id}: {type(e).__name__}", {})
            reply = {"error": {"status": known[0], "message": known[1], "details": known[2]}}
        await msg.respond(json.dumps(reply).encode())


async def _nats_error(e: Exception) -> None:
    """The NATS client's errors (a lost server, a refused connection) as one log line, not a traceback."""
    log.warning("NATS: %s", e)
