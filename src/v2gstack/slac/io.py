"""The asyncio shell around the SLAC state machines: AF_PACKET raw sockets, the timers, the match as a future.

`EvseSlacService` runs one charging point's SLAC on an interface (its modem's host link); the control pilot hook
(`control_pilot(state)`, the hardware seam's) starts and stops matching. `run_ev_slac()` matches a car and returns
the `Matched` (or the final `Failed`). `run_medium()` runs the simulated Green PHY medium between interfaces. Linux
only; raw sockets need root (CAP_NET_RAW).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from . import frames as f
from .ev import EvSlac, EvState
from .evse import EvseSlac
from .medium import Medium
from .netdev import mac_address
from .outputs import Failed, KeyResult, Matched, Output, PilotRequest, Send
from .timers import EvseSlacSettings, EvSlacSettings, SlacTimers

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent


class RawLink:
    """An AF_PACKET socket on one interface, frames of one Ethertype (or all), delivered to an asyncio queue."""

    def __init__(self, iface: str, ethertype: int = f.ETHERTYPE_HOMEPLUG) -> None:
        self.iface = iface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        try:
            self.sock.bind((iface, ethertype))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)
        self.sent = 0
        self.send_errors = 0

    def _readable(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("raw socket on %s: %s", self.iface, e)
                return
            if addr[2] != PACKET_OUTGOING:
                self.queue.put_nowait(data)

    def send(self, frame: bytes) -> None:
        """Send one frame; an error is logged and counted (the protocol's timers handle the loss)."""
        try:
            self.sock.send(frame)
            self.sent += 1
        except OSError as e:
            self.send_errors += 1
            log.warning("raw socket on %s: cannot send %d bytes: %s", self.iface, len(frame), e)

    def wake(self) -> None:
        """Make a waiting `recv` return None (the machine's deadline changed)."""
        self.queue.put_nowait(None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


class Machine(Protocol):
    """What the driver needs of a SLAC state machine."""

    def receive(self, data: bytes, now: float) -> list[Output]: ...

    def poll(self, now: float) -> list[Output]: ...

    def deadline(self) -> float | None: ...


async def drive(machine: Machine, link: RawLink, on_output: Callable[[Output], None],
                done: Callable[[], bool] = lambda: False) -> None:
    """Feed frames and expired timers to `machine`, send its frames, hand it everything else, until `done()`."""
    loop = asyncio.get_running_loop()
    while not done():
        deadline = machine.deadline()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await asyncio.wait_for(link.queue.get(), timeout)
        except TimeoutError:
            data = None
        outputs = machine.receive(data, loop.time()) if data is not None else []
        outputs += machine.poll(loop.time())
        for out in outputs:
            if isinstance(out, Send):
                link.send(out.frame)
            else:
                on_output(out)


class EvseSlacService:
    """One charging point's SLAC on `iface`; `control_pilot()` is the hardware seam's hook."""

    def __init__(self, iface: str, settings: EvseSlacSettings | None = None, timers: SlacTimers | None = None,
                 on_output: Callable[[Output], None] | None = None) -> None:
        self.iface = iface
        self.machine = EvseSlac(mac_address(iface), settings, timers)
        self.on_output = on_output
        self.matches: asyncio.Queue[Matched] = asyncio.Queue()
        self.failures: list[Failed] = []
        self.pilot_requests: list[str] = []
        self._link: RawLink | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the raw socket, set a fresh key on the modem, and serve."""
        self._link = RawLink(self.iface)
        loop = asyncio.get_running_loop()
        for out in self.machine.new_key(loop.time()):
            self._output(out)
        self._task = asyncio.create_task(drive(self.machine, self._link, self._output), name=f"slac-evse-{self.iface}")

    def control_pilot(self, state: str) -> None:
        """The pilot changed: B/C/D start matching, A/E/F leave the logical network."""
        for out in self.machine.control_pilot(state, asyncio.get_running_loop().time()):
            self._output(out)
        if self._link is not None:
            self._link.wake()

    async def matched(self) -> Matched:
        """The next match."""
        return await self.matches.get()

    def _output(self, out: Output) -> None:
        if isinstance(out, Send):
            if self._link is not None:
                self._link.send(out.frame)
            return
        if isinstance(out, Matched):
            self.matches.put_nowait(out)
        elif isinstance(out, Failed):
            self.failures.append(out)
            log.warning("SLAC EVSE %s: %s", self.iface, out.describe())
        elif isinstance(out, PilotRequest):
            self.pilot_requests.append(out.state)
        elif isinstance(out, KeyResult) and not out.ok:
            log.warning("SLAC EVSE %s: %s", self.iface, out.reason)
        if self.on_output is not None:
            self.on_output(out)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._link is not None:
            self._link.close()

    async def __aenter__(self) -> EvseSlacService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def run_ev_slac(iface: str, settings: EvSlacSettings | None = None, timers: SlacTimers | None = None,
                      on_output: Callable[[Output], None] | None = None,
                      machine: EvSlac | None = None) -> Matched | Failed:
    """Match this car over `iface`: the `Matched`, or the final `Failed` when every try failed (`machine`: a
    ready-made one, to read its counters afterwards)."""
    machine = machine or EvSlac(mac_address(iface), settings, timers)
    link = RawLink(iface)
    result: list[Matched | Failed] = []

    def output(out: Output) -> None:
        if isinstance(out, Matched) or (isinstance(out, Failed) and out.final):
            result.append(out)
        elif isinstance(out, Failed):
            log.warning("SLAC EV %s: %s; trying again", iface, out.describe())
        if on_output is not None:
            on_output(out)

    try:
        for out in machine.start(asyncio.get_running_loop().time()):
            if isinstance(out, Send):
                link.send(out.frame)
            else:
                output(out)
        await drive(machine, link, output, done=lambda: bool(result) or machine.state is EvState.FAILED)
    finally:
        link.close()
    log.info("SLAC EV %s: drops %s", iface, machine.drops.summary())
    return result[0] if result else Failed("SLAC", "stopped", final=True)


async def run_medium(medium: Medium, ifaces: dict[str, str], stop: asyncio.Event | None = None) -> None:
    """Forward frames between the interfaces (port name -> interface) through `medium` until `stop` is set."""
    links = {name: RawLink(iface, ETH_P_ALL) for name, iface in ifaces.items()}
    stop = stop or asyncio.Event()

    async def pump(name: str, link: RawLink) -> None:
        while True:
            data = await link.queue.get()
            if data is None:
                continue
            for target, frame in medium.receive(name, data):
                links[target].send(frame)

    tasks = [asyncio.create_task(pump(n, link)) for n, link in links.items()]
    try:
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in links.values():
            link.close()
