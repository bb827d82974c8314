"""SLAC timers and settings: ISO 15118-3 Table A.1 names and values, EVerest EvseSlac setting names where they exist.

All times are seconds. Every value can be scaled (`scaled()`) for slow test rigs; the defaults are the standard's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class SlacTimers:
    """ISO 15118-3 Table A.1 (values as pyslac and EVerest use them)."""

    tt_evse_slac_init: float = 50.0  # TT_EVSE_SLAC_init: CP state B -> the first CM_SLAC_PARM.REQ (20-50 s)
    tt_match_sequence: float = 0.4  # TT_match_sequence: between the messages of one sequence (400 ms)
    tt_match_response: float = 0.2  # TT_match_response: a request -> its answer (200 ms)
    tt_evse_match_mnbc: float = 0.6  # TT_EVSE_match_MNBC: collecting sounds (600 ms; sent as Time_Out 6)
    tt_ev_atten_results: float = 1.2  # TT_EV_atten_results: first START_ATTEN_CHAR -> the ATTEN_CHAR.INDs
    tt_evse_match_session: float = 10.0  # TT_EVSE_match_session: ATTEN_CHAR.RSP -> CM_SLAC_MATCH.REQ (10 s)
    tt_matching_repetition: float = 10.0  # TT_matching_repetition: all retries of one matching start within it
    tt_matching_rate: float = 0.4  # TT_matching_rate: pause after a failed matching before the next try
    tp_ev_batch_msg_interval: float = 0.02  # TP_EV_batch_msg_interval: between two sounds (20-50 ms)
    t_step_ef: float = 4.0  # T_step_EF: minimum time in state E/F when the EVSE restarts the sequence

    def scaled(self, factor: float) -> SlacTimers:
        """Every timer multiplied by `factor`."""
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})


@dataclass(frozen=True)
class EvseSlacSettings:
    """The EVSE's SLAC settings; the names follow EVerest's EvseSlac module configuration."""

    evse_id: str = "DE*V2G*E0001"
    number_of_sounds: int = 10  # C_EV_match_MNBC asked of the EV in CM_SLAC_PARM.CNF
    slac_init_timeout_ms: int = 50_000  # TT_EVSE_SLAC_init
    set_key_timeout_ms: int = 1000  # CM_SET_KEY.REQ -> .CNF on the local modem ("works for QCA7000/7005/CG5317")
    ac_mode_five_percent: bool = False  # AC with 5 % PWM: on TT_EVSE_SLAC_init, E/F for T_step_EF and retry
    sounding_attenuation_adjustment: int = 0  # dB added to every group of the reported profile (EvseSlac)
    max_matching_sessions: int = 4  # EVs answered at once (a car on a shared bundle hears its neighbours)
    retries_on_timeout: int = 2  # C_sequ_retry: E/F restarts after TT_EVSE_SLAC_init in 5 % mode
    atten_char_retries: int = 2  # CM_ATTEN_CHAR.IND repeats when no .RSP within TT_match_response

    @property
    def slac_init_timeout(self) -> float:
        return self.slac_init_timeout_ms / 1000

    @property
    def set_key_timeout(self) -> float:
        return self.set_key_timeout_ms / 1000


@dataclass(frozen=True)
class EvSlacSettings:
    """The EV's SLAC settings (EVerest EvSlac names where it has one)."""

    number_of_sounds: int = 10  # sounds sent when the EVSE does not ask for another number (C_EV_match_MNBC)
    start_atten_char_count: int = 3  # C_EV_start_atten_char_inds
    match_retries: int = 2  # C_EV_match_retry: repeats of CM_SLAC_PARM.REQ and CM_SLAC_MATCH.REQ
    max_matching_starts: int = 3  # C_conn_max_match: matching starts within TT_matching_repetition
    set_key_timeout_ms: int = 1000  # the EV's own modem
