"""SLAC state machines on the simulated medium in memory, on a simulated clock: fast, deterministic tests.

Each machine sits on a medium port; frames it sends go through `Medium.receive` and arrive at the other machines
after `latency` seconds. `run(until)` advances the clock event by event (frames, then each machine's deadline).
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from v2gstack.slac.medium import Medium
from v2gstack.slac.outputs import Output, Send


@dataclass
class Node:
    """A machine on a port, with everything it output besides frames."""

    port: str
    machine: Any
    outputs: list[Output] = field(default_factory=list)
    mute: bool = False  # drop everything it sends (a silent peer)


class SimNet:
    """The medium, the nodes and a clock."""

    def __init__(self, latency: float = 0.001) -> None:
        self.medium = Medium()
        self.nodes: dict[str, Node] = {}
        self.now = 0.0
        self.latency = latency
        self._queue: list[tuple[float, int, str, bytes]] = []
        self._seq = itertools.count()
        self.injected: list[tuple[str, bytes]] = []
        self.tap: list[tuple[str, bytes]] = []  # every frame a node sent (port, frame)

    def add(self, port: str, kind: str, machine: Any, attenuation: dict[str, int] | None = None) -> Node:
        self.medium.add_port(port, kind, attenuation)
        node = Node(port, machine)
        self.nodes[port] = node
        return node

    def feed(self, node: Node, outputs: list[Output]) -> None:
        """Hand a machine's outputs to the medium (frames) or its record (the rest)."""
        for out in outputs:
            if isinstance(out, Send):
                if node.mute:
                    continue
                self.tap.append((node.port, out.frame))
                self.send_raw(node.port, out.frame)
            else:
                node.outputs.append(out)

    def send_raw(self, port: str, frame: bytes, delay: float = 0.0) -> None:
        """A frame as if the host on `port` had sent it (tests inject bad frames this way)."""
        for target, data in self.medium.receive(port, frame):
            heapq.heappush(self._queue, (self.now + delay + self.latency, next(self._seq), target, data))

    def deliver_to(self, port: str, frame: bytes) -> None:
        """A frame arriving at `port`'s host directly (not through the medium)."""
        heapq.heappush(self._queue, (self.now + self.latency, next(self._seq), port, frame))

    def run(self, until: float, stop: Any = None) -> None:
        """Advance the clock to `until` (or until `stop()` is true)."""
        while True:
            if stop is not None and stop():
                return
            deadlines = [(n.machine.deadline(), n) for n in self.nodes.values() if n.machine.deadline() is not None]
            next_frame = self._queue[0][0] if self._queue else None
            next_timer = min((d for d, _ in deadlines), default=None)
            candidates = [t for t in (next_frame, next_timer) if t is not None]
            if not candidates or min(candidates) > until:
                self.now = until
                return
            t = min(candidates)
            self.now = max(self.now, t)
            if next_frame is not None and next_frame == t:
                _, _, port, data = heapq.heappop(self._queue)
                node = self.nodes.get(port)
                if node is None:  # a port without a machine (a test's injector)
                    continue
                self.feed(node, node.machine.receive(data, self.now))
            else:
                for d, node in deadlines:
                    if d <= self.now:
                        self.feed(node, node.machine.poll(self.now))


def seeded(seed: int):
    """A deterministic rng(n) -> bytes for the machines."""
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))
