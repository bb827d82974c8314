"""A simulated PLC segment in network namespaces: cars and chargers, each in its own namespace with one veth, whose
other ends meet in a `plc` namespace where `v2gstack slac medium` plays the Green PHY medium and the modems.

Needs root and iproute2 (`netns.skip_reason()`); every process is started with `ip netns exec`.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from helpers import netns


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _in(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, timeout=20)


@dataclass
class Host:
    """A car or a charger: its namespace, its interface, its port name on the medium."""

    ns: str
    iface: str
    port: str


@dataclass
class PlcSegment:
    """The namespaces and links; `destroy()` removes them (and the processes die with their namespaces' links)."""

    tag: str
    plc_ns: str
    evs: list[Host] = field(default_factory=list)
    evses: list[Host] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, n_evse: int, n_ev: int = 1) -> PlcSegment:
        tag = uuid.uuid4().hex[:5]
        seg = cls(tag, f"v2g-plc-{tag}")
        _ip("netns", "add", seg.plc_ns)
        try:
            _in(seg.plc_ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            _in(seg.plc_ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            for kind, count, hosts in (("ev", n_ev, seg.evs), ("evse", n_evse, seg.evses)):
                for i in range(1, count + 1):
                    host = Host(f"v2g-{kind}{i}-{tag}", f"{kind}{i}", f"p{kind}{i}{tag}")
                    _ip("netns", "add", host.ns)
                    hosts.append(host)
                    _ip("link", "add", host.port, "netns", seg.plc_ns, "type", "veth", "peer", "name", host.iface,
                        "netns", host.ns)
                    _in(seg.plc_ns, "ip", "link", "set", host.port, "promisc", "on", "up")
                    for key in ("all.disable_ipv6=0", "all.accept_dad=0", "default.accept_dad=0",
                                f"{host.iface}.accept_dad=0"):
                        _in(host.ns, "sysctl", "-qw", f"net.ipv6.conf.{key}")
                    _in(host.ns, "ip", "link", "set", "lo", "up")
                    _in(host.ns, "ip", "link", "set", host.iface, "up")
            seg._wait_for_link_local()
        except BaseException:
            seg.destroy()
            raise
        return seg

    def _wait_for_link_local(self) -> None:
        deadline = time.monotonic() + 10
        for host in self.evs + self.evses:
            while True:
                out = subprocess.run(["ip", "netns", "exec", host.ns, "ip", "-6", "-o", "addr", "show", "dev",
                                      host.iface, "scope", "link"], capture_output=True, text=True).stdout
                if "fe80::" in out:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no link-local address on {host.iface}")
                time.sleep(0.05)

    def mac(self, host: Host) -> str:
        out = subprocess.run(["ip", "netns", "exec", host.ns, "cat", f"/sys/class/net/{host.iface}/address"],
                             capture_output=True, text=True, check=True).stdout
        return out.strip()

    def start(self, ns: str, argv: list[str], log: Path) -> subprocess.Popen:
        """A process in namespace `ns`, its standard output and error into `log`."""
        handle = log.open("w")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=handle, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_medium(self, attenuation: list[int], log: Path) -> subprocess.Popen:
        argv = [sys.executable, "-m", "v2gstack", "slac", "medium"]
        for ev in self.evs:
            argv += ["--ev", ev.port]
        for host, db in zip(self.evses, attenuation, strict=True):
            argv += ["--evse", f"{host.port}={db}"]
        return self.start(self.plc_ns, argv, log)

    def destroy(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for host in self.evs + self.evses:
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", self.plc_ns], capture_output=True, timeout=20)


def wait_for_text(path: Path, text: str, proc: subprocess.Popen, limit: float = 30.0) -> None:
    """Wait until `text` is in the file (a safety net, not a timing check); fail if the process ends first."""
    deadline = time.monotonic() + limit
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {path.name}:\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


skip_reason = netns.skip_reason
