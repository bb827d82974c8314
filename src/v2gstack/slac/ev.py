"""The EV side of SLAC (ISO 15118-3 §9), sans-I/O: frames and the time go in, `Output`s come out.

The EV broadcasts CM_SLAC_PARM.REQ and keeps every EVSE that answers within TT_match_response (on a shared cable
bundle several do), sends CM_START_ATTEN_CHAR.IND three times and the sounds TP_EV_batch_msg_interval apart,
collects the CM_ATTEN_CHAR.IND of each EVSE until TT_EV_atten_results (answering each with CM_ATTEN_CHAR.RSP),
chooses the EVSE with the lowest mean attenuation, asks it with CM_SLAC_MATCH.REQ and sets the NMK it gets on its
own modem (CM_SET_KEY.REQ). A failed try waits TT_matching_rate and starts again, at most C_conn_max_match times
within TT_matching_repetition. Bad frames are dropped and counted in `drops`; nothing raises.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from . import frames as f
from .outputs import Failed, KeyResult, Matched, Output, Send
from .timers import EvSlacSettings, SlacTimers

log = logging.getLogger(__name__)


class EvState(StrEnum):
    """Where the EV is."""

    IDLE = "Idle"
    WAIT_PARM_CNF = "WaitSlacParmCnf"
    SOUNDING = "Sounding"
    WAIT_ATTEN_CHAR = "WaitAttenChar"
    WAIT_MATCH_CNF = "WaitSlacMatchCnf"
    SET_KEY = "SetKey"
    PAUSE = "Pause"  # TT_matching_rate between two tries
    MATCHED = "Matched"
    FAILED = "Failed"


@dataclass
class Candidate:
    """An EVSE that answered CM_SLAC_PARM.REQ, and what it reported."""

    mac: bytes
    parm: f.SlacParmCnf
    attenuation: float | None = None  # mean of CM_ATTEN_CHAR.IND's groups, dB
    atten_char: f.AttenCharInd | None = None


class EvSlac:
    """The EV's SLAC state machine."""

    def __init__(self, mac: bytes, settings: EvSlacSettings | None = None, timers: SlacTimers | None = None,
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        self.mac = mac
        self.settings = settings or EvSlacSettings()
        self.timers = timers or SlacTimers()
        self.rng = rng
        self.state = EvState.IDLE
        self.drops = f.DropCounter()
        self.failures = f.DropCounter()
        self.candidates: dict[bytes, Candidate] = {}
        self.chosen: Candidate | None = None
        self.matched: Matched | None = None
        self.run_id = b""
        self._deadline: float | None = None
        self._tries = 0  # requests of the current step
        self._starts: list[float] = []  # when each matching try started
        self._to_send: list[bytes] = []  # the sounding sequence still to send
        self._atten_deadline = 0.0
        self._cnf: f.SlacMatchCnf | None = None

    # ----- inputs -----

    def start(self, now: float) -> list[Output]:
        """Begin matching (the EV saw the pilot's 5 % PWM or state B)."""
        self._starts = [t for t in self._starts if now - t < self.timers.tt_matching_repetition] + [now]
        self.run_id = self.rng(f.RUN_ID_LEN)
        self.candidates.clear()
        self.chosen = None
        self.matched = None
        self.state = EvState.WAIT_PARM_CNF
        self._tries = 0
        return self._send_parm(now)

    def receive(self, data: bytes, now: float) -> list[Output]:
        """One frame from the interface."""
        frame = f.parse(data)
        if isinstance(frame, f.Drop):
            self.drops.add(frame.reason)
            return []
        if frame.src == self.mac:
            return []
        p = frame.payload
        if isinstance(p, f.SetKeyCnf):
            return self._set_key_cnf(p, now)
        if isinstance(p, (f.SlacParmCnf, f.AttenCharInd, f.SlacMatchCnf)):
            if frame.dst != self.mac:
                self.drops.add("not_for_us")
                return []
            if p.run_id != self.run_id:
                self.drops.add("wrong_run_id")
                return []
        if isinstance(p, f.SlacParmCnf):
            return self._parm_cnf(frame, p)
        if isinstance(p, f.AttenCharInd):
            return self._atten_char(frame, p, now)
        if isinstance(p, f.SlacMatchCnf):
            return self._match_cnf(frame, p, now)
        if isinstance(p, (f.SlacParmReq, f.StartAttenCharInd, f.MnbcSoundInd)):
            self.drops.add("another_ev")  # a neighbour's car matching on the same medium
            return []
        self.drops.add(f"unexpected_{p.MMTYPE.name.lower()}")
        return []

    def poll(self, now: float) -> list[Output]:
        """Run the timers that expired by `now`."""
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        match self.state:
            case EvState.WAIT_PARM_CNF:
                if self.candidates:
                    return self._begin_sounding(now)
                if self._tries <= self.settings.match_retries:
                    return self._send_parm(now)
                return self._fail("CM_SLAC_PARM.CNF", "no EVSE answered within TT_match_response", now)
            case EvState.SOUNDING:
                return self._next_sound(now)
            case EvState.WAIT_ATTEN_CHAR:
                return self._choose(now)
            case EvState.WAIT_MATCH_CNF:
                if self._tries <= self.settings.match_retries:
                    return self._send_match(now)
                return self._fail("CM_SLAC_MATCH.CNF", "TT_match_response expired", now)
            case EvState.SET_KEY:
                self.failures.add("set_key:timeout")
                return [KeyResult(False, "no CM_SET_KEY.CNF from the EV's modem"), *self._joined()]
            case EvState.PAUSE:
                return self.start(now)
        return []

    def deadline(self) -> float | None:
        """The next time `poll` has something to do."""
        return self._deadline

    # ----- steps -----

    def _send_parm(self, now: float) -> list[Output]:
        self._tries += 1
        self._deadline = now + self.timers.tt_match_response
        return [Send(f.encode(f.BROADCAST, self.mac, f.SlacParmReq(self.run_id)))]

    def _parm_cnf(self, frame: f.Frame, p: f.SlacParmCnf) -> list[Output]:
        if self.state is not EvState.WAIT_PARM_CNF:
            self.drops.add("slac_parm_cnf_out_of_sequence")
            return []
        if p.forwarding_sta != self.mac or p.resp_type != f.RESP_TYPE_OTHER_GP_STA:
            self.drops.add("bad_slac_parm_cnf")
            return []
        self.candidates.setdefault(frame.src, Candidate(frame.src, p))
        return []

    def _begin_sounding(self, now: float) -> list[Output]:
        parms = [c.parm for c in self.candidates.values()]
        sounds = max(p.num_sounds for p in parms) or self.settings.number_of_sounds
        time_out = max(p.time_out for p in parms)
        start = f.StartAttenCharInd(self.mac, self.run_id, sounds, time_out)
        seq = [f.encode(f.BROADCAST, self.mac, start)] * self.settings.start_atten_char_count
        seq += [f.encode(f.BROADCAST, self.mac, f.MnbcSoundInd(self.run_id, sounds - 1 - i, self.rng(16)))
                for i in range(sounds)]
        self._to_send = seq
        self.state = EvState.SOUNDING
        self._atten_deadline = now + self.timers.tt_ev_atten_results
        return self._next_sound(now)

    def _next_sound(self, now: float) -> list[Output]:
        frame = self._to_send.pop(0)
        if self._to_send:
            self._deadline = now + self.timers.tp_ev_batch_msg_interval
        else:
            self.state = EvState.WAIT_ATTEN_CHAR
            self._deadline = max(self._atten_deadline, now)
        return [Send(frame)]

    def _atten_char(self, frame: f.Frame, p: f.AttenCharInd, now: float) -> list[Output]:
        candidate = self.candidates.get(frame.src)
        if candidate is None or self.state not in (EvState.SOUNDING, EvState.WAIT_ATTEN_CHAR):
            self.drops.add("atten_char_out_of_sequence" if candidate else "atten_char_from_unknown_evse")
            return []
        if p.source_address != self.mac:
            self.drops.add("bad_atten_char")
            return []
        rsp = f.AttenCharRsp(self.mac, self.run_id, 0, p.source_id, p.resp_id)
        out: list[Output] = [Send(f.encode(frame.src, self.mac, rsp))]
        if candidate.atten_char is None:
            candidate.atten_char = p
            candidate.attenuation = p.average
            log.info("SLAC EV %s: EVSE %s reports %.1f dB", f.mac_text(self.mac), f.mac_text(frame.src), p.average)
        if self.state is EvState.WAIT_ATTEN_CHAR and all(c.atten_char for c in self.candidates.values()):
            out += self._choose(now)  # every EVSE that answered has reported: no need to wait longer
        return out

    def _choose(self, now: float) -> list[Output]:
        heard = [c for c in self.candidates.values() if c.attenuation is not None]
        if not heard:
            return self._fail("CM_ATTEN_CHAR.IND", "no EVSE reported within TT_EV_atten_results", now)
        self.chosen = min(heard, key=lambda c: c.attenuation)  # type: ignore[arg-type, return-value]
        self.state = EvState.WAIT_MATCH_CNF
        self._tries = 0
        return self._send_match(now)

    def _send_match(self, now: float) -> list[Output]:
        assert self.chosen is not None
        self._tries += 1
        self._deadline = now + self.timers.tt_match_response
        req = f.SlacMatchReq(self.mac, self.chosen.mac, self.run_id,
                             evse_id=self.chosen.atten_char.resp_id if self.chosen.atten_char else b"\x00" * 17)
        return [Send(f.encode(self.chosen.mac, self.mac, req))]

    def _match_cnf(self, frame: f.Frame, p: f.SlacMatchCnf, now: float) -> list[Output]:
        if self.state is not EvState.WAIT_MATCH_CNF or self.chosen is None or frame.src != self.chosen.mac:
            self.drops.add("slac_match_cnf_out_of_sequence")
            return []
        if p.pev_mac != self.mac or p.evse_mac != frame.src:
            self.drops.add("bad_slac_match_cnf")
            return []
        self._cnf = p
        self.state = EvState.SET_KEY
        self._deadline = now + self.settings.set_key_timeout_ms / 1000
        req = f.SetKeyReq(p.nid, p.nmk, my_nonce=int.from_bytes(self.rng(4), "big"))
        return [Send(f.encode(f.LOCAL_MODEM, self.mac, req))]

    def _set_key_cnf(self, p: f.SetKeyCnf, now: float) -> list[Output]:
        if self.state is not EvState.SET_KEY:
            self.drops.add("unexpected_cm_set_key_cnf")
            return []
        self._deadline = None
        if p.result != 0:
            self.failures.add("set_key:refused")
            return [KeyResult(False, f"modem refused the key (result {p.result})"), *self._joined()]
        return [KeyResult(True), *self._joined()]

    def _joined(self) -> list[Output]:
        assert self._cnf is not None and self.chosen is not None
        cnf = self._cnf
        self.state = EvState.MATCHED
        self.matched = Matched(self.mac, self.chosen.mac, self.run_id, cnf.nid, cnf.nmk, self.chosen.attenuation)
        log.info("SLAC EV %s: %s", f.mac_text(self.mac), self.matched.describe())
        return [self.matched]

    def _fail(self, step: str, reason: str, now: float) -> list[Output]:
        self.failures.add(f"{step}:{reason.split()[-1]}")
        recent = [t for t in self._starts if now - t < self.timers.tt_matching_repetition]
        if len(recent) < self.settings.max_matching_starts:
            self.state = EvState.PAUSE
            self._deadline = now + self.timers.tt_matching_rate
            return [Failed(step, reason)]
        self.state = EvState.FAILED
        self._deadline = None
        return [Failed(step, reason, final=True)]
