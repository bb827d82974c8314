"""SLAC's EVSE and EV state machines on the simulated medium in memory (simulated clock): the match, the choice of
the EVSE by attenuation, timeouts and retries, bad and out-of-sequence frames, a second car mid-match."""

from __future__ import annotations

import pytest
from helpers.slac_sim import SimNet, seeded

from v2gstack.slac import frames as f
from v2gstack.slac.ev import EvSlac, EvState
from v2gstack.slac.evse import EvseSlac, EvseState
from v2gstack.slac.outputs import Failed, KeyResult, Matched, PilotRequest
from v2gstack.slac.timers import EvseSlacSettings, EvSlacSettings

EV_MAC = bytes.fromhex("020000000e01")
EV2_MAC = bytes.fromhex("020000000e02")


def evse_mac(i: int) -> bytes:
    return bytes.fromhex(f"0200000000{i:02x}")


def _net(attenuations: list[int], settings: EvseSlacSettings | None = None) -> SimNet:
    net = SimNet()
    for i, db in enumerate(attenuations, 1):
        evse = EvseSlac(evse_mac(i), settings, rng=seeded(i))
        node = net.add(f"evse{i}", "evse", evse, {"ev": db, "ev2": db})
        net.feed(node, evse.new_key(0.0))
    net.run(0.1)
    for node in net.nodes.values():
        node.machine.control_pilot("B", net.now)
    return net


def _add_ev(net: SimNet, port: str = "ev", mac: bytes = EV_MAC, seed: int = 100) -> EvSlac:
    ev = EvSlac(mac, rng=seeded(seed))
    node = net.add(port, "ev", ev)
    net.feed(node, ev.start(net.now))
    return ev


def test_ev_and_evse_match_and_share_the_key() -> None:
    net = _net([20])
    ev = _add_ev(net)
    net.run(5, stop=lambda: ev.state is EvState.MATCHED)
    evse = net.nodes["evse1"].machine
    assert ev.state is EvState.MATCHED and evse.state is EvseState.MATCHED
    assert ev.matched.nmk == evse.nmk and ev.matched.nid == evse.nid
    assert net.medium.ports["ev"].nmk == net.medium.ports["evse1"].nmk == evse.nmk
    assert [o for o in net.nodes["evse1"].outputs if isinstance(o, KeyResult)] == [KeyResult(True)]
    matched = [o for o in net.nodes["evse1"].outputs if isinstance(o, Matched)]
    assert len(matched) == 1 and matched[0].ev_mac == EV_MAC
    assert ev.matched.attenuation == pytest.approx(20, abs=1)
    assert ev.drops.total == 0 and evse.drops.total == 0, (ev.drops.summary(), evse.drops.summary())
    assert net.now < 2.0  # one pass: no retry was needed


def test_the_car_picks_the_evse_with_the_lowest_attenuation_among_three() -> None:
    net = _net([35, 12, 50])
    ev = _add_ev(net)
    net.run(5, stop=lambda: ev.state is EvState.MATCHED)
    assert ev.state is EvState.MATCHED
    assert ev.matched.evse_mac == evse_mac(2)
    assert sorted(round(c.attenuation) for c in ev.candidates.values()) == [12, 35, 50]
    assert net.nodes["evse2"].machine.state is EvseState.MATCHED
    for other in ("evse1", "evse3"):  # the others gave up on this car after TT_EVSE_match_session
        net.run(net.now + 11)
        assert net.nodes[other].machine.state is EvseState.WAIT_PARM
        fails = [o for o in net.nodes[other].outputs if isinstance(o, Failed)]
        assert [x.step for x in fails] == ["CM_SLAC_MATCH.REQ"] and "TT_EVSE_match_session" in fails[0].reason


def test_two_cars_at_once_each_get_their_own_evse() -> None:
    net = SimNet()
    for i, atten in ((1, {"ev": 10, "ev2": 40}), (2, {"ev": 40, "ev2": 10})):
        evse = EvseSlac(evse_mac(i), rng=seeded(i))
        net.feed(net.add(f"evse{i}", "evse", evse, atten), evse.new_key(0.0))
        evse.control_pilot("B", 0.0)
    ev1 = _add_ev(net)
    ev2 = _add_ev(net, "ev2", EV2_MAC, 200)
    net.run(5, stop=lambda: ev1.state is EvState.MATCHED and ev2.state is EvState.MATCHED)
    assert ev1.matched.evse_mac == evse_mac(1) and ev2.matched.evse_mac == evse_mac(2)
    assert net.medium.ports["ev"].nmk == net.medium.ports["evse1"].nmk != net.medium.ports["evse2"].nmk


def test_evse_without_slac_parm_times_out_after_tt_evse_slac_init() -> None:
    net = _net([20], EvseSlacSettings(slac_init_timeout_ms=20_000))
    net.run(19.9)
    evse = net.nodes["evse1"].machine
    assert evse.state is EvseState.WAIT_PARM
    net.run(20.2)
    assert evse.state is EvseState.UNMATCHED
    fails = [o for o in net.nodes["evse1"].outputs if isinstance(o, Failed)]
    assert fails == [Failed("CM_SLAC_PARM.REQ", "TT_EVSE_SLAC_init expired", final=True)]
    evse.control_pilot("A", net.now)
    evse.control_pilot("B", net.now)  # a new plug-in starts again
    assert evse.state is EvseState.WAIT_PARM


def test_five_percent_mode_steps_through_e_f_and_retries() -> None:
    net = _net([20], EvseSlacSettings(slac_init_timeout_ms=20_000, ac_mode_five_percent=True, retries_on_timeout=2))
    net.run(100)
    outs = net.nodes["evse1"].outputs
    assert [o.state for o in outs if isinstance(o, PilotRequest)] == ["E", "B", "E", "B"]
    assert net.nodes["evse1"].machine.state is EvseState.UNMATCHED
    assert sum(1 for o in outs if isinstance(o, Failed) and o.final) == 1


def test_silent_evse_makes_the_ev_retry_then_give_up() -> None:
    net = _net([20])
    net.nodes["evse1"].mute = True
    ev = _add_ev(net)
    net.run(30)
    assert ev.state is EvState.FAILED
    fails = [o for o in net.nodes["ev"].outputs if isinstance(o, Failed)]
    assert len(fails) == 3 and fails[-1].final and all(x.step == "CM_SLAC_PARM.CNF" for x in fails)
    parm_reqs = [fr for port, fr in net.tap if port == "ev" and f.parse(fr).mmtype is f.MMType.CM_SLAC_PARM_REQ]
    assert len(parm_reqs) == 3 * 3  # C_conn_max_match tries x (1 + C_EV_match_retry) requests


def test_lost_slac_match_cnf_is_retried_by_the_ev() -> None:
    net = _net([20])
    ev = _add_ev(net)
    evse_node = net.nodes["evse1"]
    original = evse_node.machine.receive
    dropped = []

    def lose_first_match_cnf(data: bytes, now: float):
        outs = original(data, now)
        if isinstance(f.parse(data), f.Frame) and f.parse(data).mmtype is f.MMType.CM_SLAC_MATCH_REQ and not dropped:
            dropped.append(outs)
            return [o for o in outs if not hasattr(o, "frame")]
        return outs

    evse_node.machine.receive = lose_first_match_cnf
    net.run(5, stop=lambda: ev.state is EvState.MATCHED)
    assert ev.state is EvState.MATCHED and dropped
    assert sum(1 for o in evse_node.outputs if isinstance(o, Matched)) == 1  # the repeat only re-sends the CNF


def test_ev_that_stops_after_slac_parm_lets_the_evse_wait_again() -> None:
    net = _net([20])
    ev = EvSlac(EV_MAC, rng=seeded(5))
    node = net.add("ev", "ev", ev)
    net.feed(node, ev.start(net.now))
    node.mute = True  # stop talking right after the first request
    net.run(3)
    evse = net.nodes["evse1"].machine
    assert evse.state is EvseState.WAIT_PARM and not evse.sessions
    fails = [o for o in net.nodes["evse1"].outputs if isinstance(o, Failed)]
    assert fails and fails[0].step == "CM_START_ATTEN_CHAR.IND" and "TT_match_sequence" in fails[0].reason


def test_second_car_mid_match_does_not_disturb_the_first() -> None:
    net = _net([20])
    ev = _add_ev(net)
    net.run(net.now + 0.05)  # mid-match
    intruder = f.encode(f.BROADCAST, EV2_MAC, f.SlacParmReq(b"\x99" * 8))
    net.medium.add_port("ev2", "ev")
    net.send_raw("ev2", intruder)
    net.run(5, stop=lambda: ev.state is EvState.MATCHED)
    evse = net.nodes["evse1"].machine
    assert ev.state is EvState.MATCHED and evse.matched.ev_mac == EV_MAC
    assert evse.failures.total == 0


@pytest.mark.parametrize("frame, reason", [
    (b"\x00" * 10, "truncated_header"),
    (b"\xff" * 12 + b"\x08\x00" + b"\x00" * 46, "not_homeplug"),
    (b"\xff" * 12 + b"\x88\xe1\x00\x64\x60\x00\x00" + b"\x00" * 41, "unsupported_mmv"),
    (b"\xff" * 12 + b"\x88\xe1\x01\x00\xa0\x00\x00" + b"\x00" * 41, "unknown_mmtype"),
    (b"\xff" * 12 + b"\x88\xe1\x01\x64\x60\x01\x00" + b"\x00" * 41, "fragmented"),
    (b"\xff" * 12 + b"\x88\xe1\x01\x7c\x60\x00\x00" + b"\x00" * 41, "truncated_payload"),
    (b"\xff" * 12 + b"\x88\xe1\x01\x64\x60\x00\x00\x05" + b"\x00" * 40, "bad_application_type"),
    (b"\xff" * 12 + b"\x88\xe1\x01\x64\x60\x00\x00\x00\x01" + b"\x00" * 39, "bad_security_type"),
])
def test_bad_frames_are_dropped_with_a_counted_reason(frame: bytes, reason: str) -> None:
    evse = EvseSlac(evse_mac(1))
    evse.control_pilot("B", 0.0)
    assert evse.receive(frame, 0.0) == []
    assert evse.drops.counts == {reason: 1}
    ev = EvSlac(EV_MAC)
    ev.start(0.0)
    assert ev.receive(frame, 0.0) == []
    assert ev.drops.counts == {reason: 1}


def test_match_req_with_a_wrong_mvf_length_or_trailing_bytes_is_dropped() -> None:
    good = f.encode(evse_mac(1), EV_MAC, f.SlacMatchReq(EV_MAC, evse_mac(1), b"\x01" * 8))
    assert isinstance(f.parse(good), f.Frame)
    bad_mvf = good[:21] + b"\x00\x3e" + good[23:]  # big-endian MVFLength, as pyslac's scapy EV writes it
    assert f.parse(bad_mvf) == f.Drop("bad_mvf_length", f.MMType.CM_SLAC_MATCH_REQ)
    assert f.parse(good + b"\x01\x02") == f.Drop("trailing_data", f.MMType.CM_SLAC_MATCH_REQ)
    assert isinstance(f.parse(good + b"\x00" * 20), f.Frame)  # zero padding is fine


def test_out_of_sequence_frames_are_counted_and_ignored() -> None:
    net = _net([20])
    evse = net.nodes["evse1"].machine
    net.medium.add_port("x", "ev")
    run = b"\x07" * 8
    for payload in (f.StartAttenCharInd(EV_MAC, run, 10, 6), f.MnbcSoundInd(run, 3),
                    f.AttenCharRsp(EV_MAC, run), f.SlacMatchReq(EV_MAC, evse_mac(1), run),
                    f.SlacMatchCnf(EV_MAC, evse_mac(1), run, b"\x00" * 7, b"\x00" * 16), f.SetKeyCnf()):
        net.send_raw("x", f.encode(evse_mac(1), EV_MAC, payload))
    net.run(net.now + 0.1)
    assert evse.state is EvseState.WAIT_PARM
    # five MMEs of no session, plus the modem's attenuation profile for the stray sound
    assert evse.drops.counts == {"no_session": 6, "unexpected_cm_set_key_cnf": 1}
    ev = _add_ev(net)  # and the EVSE still matches a car afterwards
    net.run(net.now + 5, stop=lambda: ev.state is EvState.MATCHED)
    assert ev.state is EvState.MATCHED


def test_unplug_leaves_the_network_with_a_new_key() -> None:
    net = _net([20])
    ev = _add_ev(net)
    net.run(5, stop=lambda: ev.state is EvState.MATCHED)
    evse = net.nodes["evse1"].machine
    old = evse.nmk
    net.feed(net.nodes["evse1"], evse.control_pilot("A", net.now))
    net.run(net.now + 0.1)
    assert evse.state is EvseState.IDLE and evse.nmk != old
    assert net.medium.ports["evse1"].nmk == evse.nmk != net.medium.ports["ev"].nmk


def test_modem_that_never_confirms_the_key_is_reported() -> None:
    evse = EvseSlac(evse_mac(1), EvseSlacSettings(set_key_timeout_ms=1000))
    evse.new_key(0.0)
    assert evse.deadline() == pytest.approx(1.0)
    assert evse.poll(1.0) == [KeyResult(False, "no CM_SET_KEY.CNF within set_key_timeout_ms=1000")]
    assert evse.failures.counts == {"set_key:timeout": 1}


def test_ev_ignores_evses_that_answer_for_another_run() -> None:
    ev = EvSlac(EV_MAC, EvSlacSettings(), rng=seeded(1))
    ev.start(0.0)
    wrong = f.encode(EV_MAC, evse_mac(1), f.SlacParmCnf(EV_MAC, b"\x00" * 8))
    assert ev.receive(wrong, 0.01) == []
    assert ev.drops.counts == {"wrong_run_id": 1} and not ev.candidates


def test_ev_silent_after_atten_char_makes_the_evse_repeat_it_then_give_up() -> None:
    net = _net([20])
    ev = EvSlac(EV_MAC, rng=seeded(9))
    node = net.add("ev", "ev", ev)
    net.feed(node, ev.start(net.now))
    evse_node = net.nodes["evse1"]
    net.run(net.now + 2, stop=lambda: ev.state is EvState.WAIT_ATTEN_CHAR)
    node.mute = True  # the car hears CM_ATTEN_CHAR.IND but never answers
    net.run(net.now + 3)
    sent = [f.parse(fr).mmtype for port, fr in net.tap if port == "evse1"]
    assert sent.count(f.MMType.CM_ATTEN_CHAR_IND) == 1 + EvseSlacSettings().atten_char_retries
    fails = [o for o in evse_node.outputs if isinstance(o, Failed)]
    assert fails[0].step == "CM_ATTEN_CHAR.RSP" and "TT_match_response" in fails[0].reason
    assert evse_node.machine.state is EvseState.WAIT_PARM  # ready for the next try


def test_evse_silent_after_the_sounds_makes_the_ev_start_again() -> None:
    net = _net([20])
    ev = _add_ev(net)
    evse_node = net.nodes["evse1"]
    net.run(net.now + 0.01)
    evse_node.mute = True  # answered CM_SLAC_PARM.REQ, then nothing more
    net.run(net.now + 1.5)  # TT_match_response for the answers, then TT_EV_atten_results
    fails = [o for o in net.nodes["ev"].outputs if isinstance(o, Failed)]
    assert fails and fails[0].step == "CM_ATTEN_CHAR.IND" and not fails[0].final
    evse_node.mute = False  # the EVSE recovers: the next try (after TT_matching_rate) matches
    net.run(net.now + 12, stop=lambda: ev.state is EvState.MATCHED)
    assert ev.state is EvState.MATCHED


def test_a_flood_of_slac_parm_requests_does_not_lock_a_real_car_out() -> None:
    net = _net([20])
    net.medium.add_port("flood", "ev")
    for i in range(50):  # fifty fake cars that never go on
        net.send_raw("flood", f.encode(f.BROADCAST, bytes.fromhex(f"0600000000{i:02x}"), f.SlacParmReq(b"\x05" * 8)))
    net.run(net.now + 0.05)
    evse = net.nodes["evse1"].machine
    assert len(evse.sessions) == evse.settings.max_matching_sessions
    ev = _add_ev(net)
    net.run(net.now + 5, stop=lambda: ev.state is EvState.MATCHED)
    assert ev.state is EvState.MATCHED
    assert evse.drops.counts["evicted_idle_session"] >= 46


def test_no_sounds_after_start_atten_char_ends_the_session_after_tt_evse_match_mnbc() -> None:
    net = _net([20])
    ev = EvSlac(EV_MAC, rng=seeded(11))
    node = net.add("ev", "ev", ev)
    net.feed(node, ev.start(net.now))
    net.run(net.now + 1, stop=lambda: ev.state is EvState.SOUNDING)
    node.mute = True  # the first CM_START_ATTEN_CHAR.IND went out; no sound follows
    net.run(net.now + 0.7)
    evse_node = net.nodes["evse1"]
    fails = [o for o in evse_node.outputs if isinstance(o, Failed)]
    assert [x.step for x in fails] == ["CM_MNBC_SOUND.IND"] and "TT_EVSE_match_MNBC" in fails[0].reason
    assert fails[0].ev_mac == EV_MAC and evse_node.machine.state is EvseState.WAIT_PARM


def test_ev_modem_that_never_confirms_the_key_still_joins_and_says_so() -> None:
    net = _net([20])
    ev = _add_ev(net)
    net.run(5, stop=lambda: ev.state is EvState.SET_KEY)
    net.nodes["ev"].machine.receive = lambda data, now: []  # the modem's CM_SET_KEY.CNF never arrives
    net.run(net.now + 1.1)
    assert ev.state is EvState.MATCHED
    outs = net.nodes["ev"].outputs
    assert KeyResult(False, "no CM_SET_KEY.CNF from the EV's modem") in outs
    assert ev.failures.counts == {"set_key:timeout": 1}
