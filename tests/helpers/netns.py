"""Two network namespaces joined by a veth pair: an EV host and an EVSE host with IPv6 link-local addresses.

ISO 15118 peers find each other by SDP multicast (ff02::1) on a real link and talk over link-local IPv6, which
loopback cannot show; a veth pair between two namespaces is a real link on one machine. Needs root and iproute2;
`skip_reason()` says why not when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass


def skip_reason() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class VethLink:
    """Namespaces `ev_ns`/`evse_ns` with interfaces `ev_if`/`evse_if` (one veth pair), both up with link-local IPv6."""

    ev_ns: str
    evse_ns: str
    ev_if: str
    evse_if: str

    @classmethod
    def create(cls) -> VethLink:
        tag = uuid.uuid4().hex[:6]
        link = cls(f"v2g-ev-{tag}", f"v2g-evse-{tag}", f"v2gv{tag}", f"v2ge{tag}")
        _ip("netns", "add", link.ev_ns)
        _ip("netns", "add", link.evse_ns)
        try:
            _ip("link", "add", link.evse_if, "type", "veth", "peer", "name", link.ev_if)
            for ns, ifname in ((link.ev_ns, link.ev_if), (link.evse_ns, link.evse_if)):
                _ip("link", "set", ifname, "netns", ns)
                for key in ("all.disable_ipv6=0", "all.accept_dad=0", "default.accept_dad=0"):
                    link.run(ns, ["sysctl", "-qw", f"net.ipv6.conf.{key}"])
                link.run(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0"])
                link.run(ns, ["ip", "link", "set", "lo", "up"])
                link.run(ns, ["ip", "link", "set", ifname, "up"])
            link._wait_for_link_local()
        except BaseException:
            link.destroy()
            raise
        return link

    def run(self, ns: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True,
                              timeout=20)

    def command(self, ns: str, argv: list[str]) -> list[str]:
        """argv prefixed to run inside namespace `ns` (for Popen)."""
        return ["ip", "netns", "exec", ns, *argv]

    def link_local(self, ns: str, ifname: str) -> str:
        out = self.run(ns, ["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]).stdout
        for word in out.split():
            if word.startswith("fe80::"):
                return word.split("/")[0]
        raise RuntimeError(f"no link-local address on {ifname} in {ns}")

    def _wait_for_link_local(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self.link_local(self.ev_ns, self.ev_if)
                self.link_local(self.evse_ns, self.evse_if)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        for ns in (self.ev_ns, self.evse_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
