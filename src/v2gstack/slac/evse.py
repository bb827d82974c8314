"""The EVSE side of SLAC (ISO 15118-3 §9), sans-I/O: frames and the time go in, `Output`s come out.

The control pilot starts it (`control_pilot("B")`): the EVSE waits TT_EVSE_SLAC_init for CM_SLAC_PARM.REQ, answers
every EV that asks (a car on a shared cable bundle also hears this EVSE; up to `max_matching_sessions` at once),
averages the CM_ATTEN_PROFILE.IND its modem reports for that EV's sounds, sends CM_ATTEN_CHAR.IND, and answers the
first CM_SLAC_MATCH.REQ addressed to it with the NID/NMK its modem holds. Unplugging (A, E, F) leaves the logical
network: a new NMK is set on the modem (CM_SET_KEY.REQ), as [V2G3-M09-17] asks. Bad or unexpected frames are dropped
and counted in `drops`; nothing raises.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from . import frames as f
from .outputs import Failed, KeyResult, Matched, Output, PilotRequest, Send, nid_from_nmk
from .timers import EvseSlacSettings, SlacTimers

log = logging.getLogger(__name__)


class EvseState(StrEnum):
    """Where the EVSE is."""

    IDLE = "Idle"  # no vehicle (CP A) or not started
    WAIT_PARM = "WaitSlacParm"  # CP B: waiting for CM_SLAC_PARM.REQ
    STEP_EF = "StepEF"  # 5 % mode: pilot in E/F for T_step_EF before retrying
    MATCHING = "Matching"
    MATCHED = "Matched"
    UNMATCHED = "Unmatched"  # gave up; a pilot change restarts


class Step(StrEnum):
    """Where one EV's matching session is."""

    WAIT_START_ATTEN = "WaitStartAttenChar"
    SOUNDING = "Sounding"
    WAIT_ATTEN_RSP = "WaitAttenCharRsp"
    WAIT_MATCH = "WaitSlacMatch"


@dataclass
class _Session:
    """One EV's matching run at this EVSE."""

    ev_mac: bytes
    run_id: bytes
    step: Step
    deadline: float
    num_sounds: int = 0
    sums: list[int] = field(default_factory=list)
    profiles: int = 0
    sounds_heard: int = 0
    atten_char: bytes = b""
    atten_char_sent: int = 0


class EvseSlac:
    """The EVSE's SLAC state machine for one charging point (one modem)."""

    def __init__(self, mac: bytes, settings: EvseSlacSettings | None = None, timers: SlacTimers | None = None,
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        self.mac = mac
        self.settings = settings or EvseSlacSettings()
        self.timers = timers or SlacTimers()
        self.rng = rng
        self.state = EvseState.IDLE
        self.drops = f.DropCounter()
        self.failures = f.DropCounter()  # failed steps by "step:reason"
        self.sessions: dict[bytes, _Session] = {}
        self.matched: Matched | None = None
        self.nmk = b""
        self.nid = b""
        self._key_deadline: float | None = None
        self._init_deadline: float | None = None
        self._ef_deadline: float | None = None
        self._retries_left = self.settings.retries_on_timeout
        self._evse_id = self.settings.evse_id.encode()[:f.STATION_ID_LEN].ljust(f.STATION_ID_LEN, b"\x00")

    # ----- inputs -----

    def new_key(self, now: float) -> list[Output]:
        """A fresh NMK/NID for the local modem (at start and after each session): CM_SET_KEY.REQ."""
        self.nmk = self.rng(f.NMK_LEN)
        self.nid = nid_from_nmk(self.nmk)
        self._key_deadline = now + self.settings.set_key_timeout
        req = f.SetKeyReq(self.nid, self.nmk, my_nonce=int.from_bytes(self.rng(4), "big"))
        return [Send(f.encode(f.LOCAL_MODEM, self.mac, req))]

    def control_pilot(self, state: str, now: float) -> list[Output]:
        """The pilot changed (IEC 61851 A-F; B1/B2/C2 ... accepted): B/C/D starts matching, A/E/F leaves."""
        letter = state[:1].upper()
        if letter in ("B", "C", "D"):
            if self.state in (EvseState.IDLE, EvseState.UNMATCHED):
                self._retries_left = self.settings.retries_on_timeout
                self._wait_parm(now)
            return []
        if letter in ("A", "E", "F") and self.state is not EvseState.STEP_EF:
            was = self.state
            self._clear()
            self.state = EvseState.IDLE
            if was in (EvseState.MATCHED, EvseState.MATCHING):
                return self.new_key(now)  # leave the logical network: the EV's key no longer works
        return []

    def receive(self, data: bytes, now: float) -> list[Output]:
        """One frame from the interface."""
        frame = f.parse(data)
        if isinstance(frame, f.Drop):
            self.drops.add(frame.reason)
            return []
        if frame.src == self.mac:
            return []  # our own frame echoed by a capture socket
        p = frame.payload
        if isinstance(p, f.SetKeyCnf):
            return self._set_key_cnf(p)
        if isinstance(p, f.SlacParmReq):
            return self._slac_parm(frame, p, now)
        if isinstance(p, f.ValidateReq):
            self.drops.add("validate_not_supported")
            cnf = f.ValidateCnf(p.signal_type, 0, 0x04)  # 0x04: failure (this EVSE does not run BCB toggles)
            return [Send(f.encode(frame.src, self.mac, cnf))]
        session = self._session_for(frame, p)
        if session is None:
            return []
        if isinstance(p, f.StartAttenCharInd):
            return self._start_atten(session, p, now)
        if isinstance(p, f.MnbcSoundInd):
            return self._sound(session, p, now)
        if isinstance(p, f.AttenProfileInd):
            return self._profile(session, p, now)
        if isinstance(p, f.AttenCharRsp):
            return self._atten_rsp(session, p, now)
        if isinstance(p, f.SlacMatchReq):
            return self._match(frame, session, p, now)
        self.drops.add(f"unexpected_{p.MMTYPE.name.lower()}")
        return []

    def poll(self, now: float) -> list[Output]:
        """Run the timers that expired by `now`."""
        out: list[Output] = []
        if self._key_deadline is not None and now >= self._key_deadline:
            self._key_deadline = None
            self.failures.add("set_key:timeout")
            out.append(KeyResult(False, f"no CM_SET_KEY.CNF within set_key_timeout_ms="
                                        f"{self.settings.set_key_timeout_ms}"))
        if self.state is EvseState.WAIT_PARM and self._init_deadline is not None and now >= self._init_deadline:
            out += self._init_timeout(now)
        if self.state is EvseState.STEP_EF and self._ef_deadline is not None and now >= self._ef_deadline:
            self._ef_deadline = None
            out.append(PilotRequest("B"))
            self._wait_parm(now)
        for session in list(self.sessions.values()):
            if now >= session.deadline:
                out += self._session_timeout(session, now)
        return out

    def deadline(self) -> float | None:
        """The next time `poll` has something to do (None: only a frame or the pilot can move it)."""
        times = [t for t in (self._key_deadline, self._ef_deadline) if t is not None]
        if self.state is EvseState.WAIT_PARM and self._init_deadline is not None:
            times.append(self._init_deadline)
        times += [s.deadline for s in self.sessions.values()]
        return min(times) if times else None

    # ----- steps -----

    def _wait_parm(self, now: float) -> None:
        self.state = EvseState.WAIT_PARM
        self._init_deadline = now + self.settings.slac_init_timeout

    def _clear(self) -> None:
        self.sessions.clear()
        self.matched = None
        self._init_deadline = None
        self._ef_deadline = None

    def _init_timeout(self, now: float) -> list[Output]:
        self._init_deadline = None
        self.failures.add("slac_parm:TT_EVSE_SLAC_init")
        if self.settings.ac_mode_five_percent and self._retries_left > 0:
            self._retries_left -= 1
            self.state = EvseState.STEP_EF
            self._ef_deadline = now + self.timers.t_step_ef
            return [Failed("CM_SLAC_PARM.REQ", "TT_EVSE_SLAC_init expired; pilot E/F for T_step_EF, then retry"),
                    PilotRequest("E")]
        self.state = EvseState.UNMATCHED
        return [Failed("CM_SLAC_PARM.REQ", "TT_EVSE_SLAC_init expired", final=True)]

    def _set_key_cnf(self, p: f.SetKeyCnf) -> list[Output]:
        if self._key_deadline is None:
            self.drops.add("unexpected_cm_set_key_cnf")
            return []
        self._key_deadline = None
        if p.result != 0:
            self.failures.add("set_key:refused")
            return [KeyResult(False, f"modem refused the key (result {p.result})")]
        return [KeyResult(True)]

    def _slac_parm(self, frame: f.Frame, p: f.SlacParmReq, now: float) -> list[Output]:
        if self.state not in (EvseState.WAIT_PARM, EvseState.MATCHING):
            if not (self.state is EvseState.MATCHED and self.matched and frame.src == self.matched.ev_mac):
                self.drops.add(f"slac_parm_in_{self.state.value.lower()}")
                return []
            self.matched = None  # the matched EV starts again (its link failed): let it
        if frame.src not in self.sessions and len(self.sessions) >= self.settings.max_matching_sessions:
            idle = [s for s in self.sessions.values() if s.step is Step.WAIT_START_ATTEN]
            if not idle:
                self.drops.add("too_many_matching_sessions")
                return []
            # a flood of requests must not lock real cars out: the oldest session that never went on gives way
            self.sessions.pop(min(idle, key=lambda s: s.deadline).ev_mac)
            self.drops.add("evicted_idle_session")
        self.sessions[frame.src] = _Session(frame.src, p.run_id, Step.WAIT_START_ATTEN,
                                            now + self.timers.tt_match_sequence)
        self.state = EvseState.MATCHING
        self._init_deadline = None
        time_out = max(1, round(self.timers.tt_evse_match_mnbc * 10))
        cnf = f.SlacParmCnf(frame.src, p.run_id, self.settings.number_of_sounds, time_out)
        log.info("SLAC EVSE %s: CM_SLAC_PARM.REQ from %s, answering", f.mac_text(self.mac), f.mac_text(frame.src))
        return [Send(f.encode(frame.src, self.mac, cnf))]

    def _session_for(self, frame: f.Frame, p: f.Payload) -> _Session | None:
        """The session a frame belongs to (by EV MAC and RunID), else count why not."""
        ev = p.pev_mac if isinstance(p, f.AttenProfileInd) else frame.src
        session = self.sessions.get(ev)
        if session is None:
            if self.state is EvseState.MATCHED and self.matched is not None and isinstance(p, f.SlacMatchReq) \
                    and p.run_id == self.matched.run_id and ev == self.matched.ev_mac:
                return _Session(ev, p.run_id, Step.WAIT_MATCH, 0.0)  # the EV repeats its request: answer again
            self.drops.add("no_session")
            return None
        run_id = getattr(p, "run_id", session.run_id)
        if run_id != session.run_id:
            self.drops.add("wrong_run_id")
            return None
        return session

    def _start_atten(self, s: _Session, p: f.StartAttenCharInd, now: float) -> list[Output]:
        if s.step is not Step.WAIT_START_ATTEN:
            if s.step is not Step.SOUNDING:
                self.drops.add("start_atten_char_out_of_sequence")
            return []  # the EV sends it three times
        if p.resp_type != f.RESP_TYPE_OTHER_GP_STA or p.forwarding_sta != s.ev_mac:
            self.drops.add("bad_start_atten_char")
            return []
        s.step = Step.SOUNDING
        s.num_sounds = p.num_sounds
        s.deadline = now + max(p.time_out, 1) / 10
        return []

    def _sound(self, s: _Session, p: f.MnbcSoundInd, now: float) -> list[Output]:
        if s.step is Step.WAIT_START_ATTEN:  # START_ATTEN_CHAR lost: the sounds start the window
            s.step = Step.SOUNDING
            s.num_sounds = self.settings.number_of_sounds
            s.deadline = now + self.timers.tt_evse_match_mnbc
        if s.step is not Step.SOUNDING:
            self.drops.add("sound_out_of_sequence")
            return []
        s.sounds_heard += 1
        return []

    def _profile(self, s: _Session, p: f.AttenProfileInd, now: float) -> list[Output]:
        if s.step is not Step.SOUNDING:
            self.drops.add("profile_out_of_sequence")
            return []
        if not s.sums:
            s.sums = [0] * len(p.aag)
        if len(p.aag) != len(s.sums):
            self.drops.add("profile_group_count_changed")
            return []
        s.sums = [a + b for a, b in zip(s.sums, p.aag, strict=True)]
        s.profiles += 1
        if s.num_sounds and s.profiles >= s.num_sounds:
            return self._send_atten_char(s, now)
        return []

    def _send_atten_char(self, s: _Session, now: float) -> list[Output]:
        adjust = self.settings.sounding_attenuation_adjustment
        aag = tuple(min(255, max(0, round(x / s.profiles) + adjust)) for x in s.sums)
        ind = f.AttenCharInd(s.ev_mac, s.run_id, s.profiles, aag, resp_id=self._evse_id)
        s.atten_char = f.encode(s.ev_mac, self.mac, ind)
        s.atten_char_sent = 1
        s.step = Step.WAIT_ATTEN_RSP
        s.deadline = now + self.timers.tt_match_response
        return [Send(s.atten_char)]

    def _atten_rsp(self, s: _Session, p: f.AttenCharRsp, now: float) -> list[Output]:
        if s.step is not Step.WAIT_ATTEN_RSP:
            self.drops.add("atten_char_rsp_out_of_sequence")
            return []
        if p.result != 0 or p.source_address != s.ev_mac:
            self.sessions.pop(s.ev_mac, None)
            self.failures.add("atten_char:refused")
            return self._after_session_end([Failed("CM_ATTEN_CHAR.RSP", f"EV answered result {p.result}",
                                                   s.ev_mac)], now)
        s.step = Step.WAIT_MATCH
        s.deadline = now + self.timers.tt_evse_match_session
        return []

    def _match(self, frame: f.Frame, s: _Session, p: f.SlacMatchReq, now: float) -> list[Output]:
        if s.step not in (Step.WAIT_MATCH, Step.WAIT_ATTEN_RSP):
            self.drops.add("slac_match_out_of_sequence")
            return []
        if p.evse_mac != self.mac or p.pev_mac != frame.src or frame.dst != self.mac:
            self.drops.add("slac_match_for_another_evse")
            return []
        cnf = f.SlacMatchCnf(p.pev_mac, self.mac, s.run_id, self.nid, self.nmk, p.pev_id, self._evse_id)
        if self.state is EvseState.MATCHED:
            return [Send(f.encode(s.ev_mac, self.mac, cnf))]  # the EV missed our answer: once more
        self.sessions.clear()
        self.state = EvseState.MATCHED
        self.matched = Matched(s.ev_mac, self.mac, s.run_id, self.nid, self.nmk)
        log.info("SLAC EVSE %s: %s", f.mac_text(self.mac), self.matched.describe())
        return [Send(f.encode(s.ev_mac, self.mac, cnf)), self.matched]

    def _session_timeout(self, s: _Session, now: float) -> list[Output]:
        if s.step is Step.SOUNDING:
            if s.profiles:
                return self._send_atten_char(s, now)
            self.sessions.pop(s.ev_mac, None)
            self.failures.add("sounding:TT_EVSE_match_MNBC")
            fail = Failed("CM_MNBC_SOUND.IND", f"no attenuation profile for {s.sounds_heard} sounds within "
                                               "TT_EVSE_match_MNBC", s.ev_mac)
            return self._after_session_end([fail], now)
        if s.step is Step.WAIT_ATTEN_RSP and s.atten_char_sent <= self.settings.atten_char_retries:
            s.atten_char_sent += 1
            s.deadline = now + self.timers.tt_match_response
            return [Send(s.atten_char)]
        self.sessions.pop(s.ev_mac, None)
        step, timer = {
            Step.WAIT_START_ATTEN: ("CM_START_ATTEN_CHAR.IND", "TT_match_sequence"),
            Step.WAIT_ATTEN_RSP: ("CM_ATTEN_CHAR.RSP", "TT_match_response"),
            Step.WAIT_MATCH: ("CM_SLAC_MATCH.REQ", "TT_EVSE_match_session"),
        }[s.step]
        self.failures.add(f"{step}:{timer}")
        return self._after_session_end([Failed(step, f"{timer} expired", s.ev_mac)], now)

    def _after_session_end(self, out: list[Output], now: float) -> list[Output]:
        """The last EV's session ended without a match: wait for a new CM_SLAC_PARM.REQ (the EV retries)."""
        if self.state is EvseState.MATCHING and not self.sessions:
            self._wait_parm(now)
        return out
