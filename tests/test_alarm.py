"""Alarm state machine (edge.alarm) on a fake clock, and the alarm service (edge.alarm_service)."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from edge.alarm import TECHNICAL_CONDITIONS, AlarmMachine, Signal
from edge.alarm_service import AlarmService, read_cpu_temperature, serve
from edge.config import AlarmConfig, Config
from edge.events import AlarmEvent, EmotionState
from edge.hub import Hub


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def cfg(**kw: object) -> AlarmConfig:
    return dataclasses.replace(AlarmConfig(), **kw)


def state(distress: float, face: bool = True, t: float = 0.0) -> EmotionState:
    probs = (1.0 - distress, 0.0, 0.0, 0.0, distress, 0.0, 0.0)
    return EmotionState(t=t, time="2026-01-01T00:00:00.000Z", probs=probs, label="fear", confidence=0.9,
                        distress=distress, modalities={}, live=("face", "voice") if face else ("voice",))


class Rig:
    """A machine and its clock; feed() plays a constant score at `dt` steps and collects events."""

    def __init__(self, **kw: object):
        self.clock = FakeClock()
        self.m = AlarmMachine(cfg(**kw), self.clock)
        self.events: list[AlarmEvent] = []
        self.t0 = self.clock.t

    @property
    def now(self) -> float:
        return self.clock.t - self.t0

    def feed(self, value: float | EmotionState, seconds: float, dt: float = 0.5) -> list[AlarmEvent]:
        got: list[AlarmEvent] = []
        for _ in range(int(round(seconds / dt))):
            self.clock.t += dt
            got += self.m.update(value, self.clock.t)
        self.events += got
        return got

    def tick(self, seconds: float = 0.0) -> list[AlarmEvent]:
        self.clock.t += seconds
        got = self.m.tick(self.clock.t)
        self.events += got
        return got

    def ack(self, by: str = "button", long: bool = False) -> list[AlarmEvent]:
        got = self.m.acknowledge(by, long, self.clock.t)
        self.events += got
        return got


def kinds(events: list[AlarmEvent]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.condition, e.priority) for e in events]


def raise_medium(r: Rig, score: float = 0.6) -> None:
    r.feed(score, 6.5)                      # first sample above at 0.5 s, raised at 6.5 s
    assert kinds(r.events)[-1] == ("raised", "distress", "medium")


# ------------------------------------------------------------------------------ onset (T_on)

def test_calm_raises_nothing():
    r = Rig()
    assert r.feed(0.3, 600) == []
    assert r.m.signal().visual == "normal" and r.m.signal().audio is None
    assert r.m.snapshot()["active"] is False


def test_raises_medium_exactly_after_t_on():
    r = Rig()
    assert r.feed(0.55, 5.5) == []          # first sample above at 0.5 s, 5.0 s of dwell
    got = r.feed(0.55, 0.5)                 # 5.5 s of dwell
    assert got == []
    got = r.feed(0.55, 0.5)                 # 6.0 s of dwell
    assert kinds(got) == [("raised", "distress", "medium")]
    assert got[0].distress == pytest.approx(0.55) and got[0].by is None
    assert got[0].detail["reason"] == "distress_sustained"
    sig = r.m.signal()
    assert (sig.priority, sig.visual, sig.audio, sig.paused) == ("medium", "medium", "medium", False)


def test_tick_raises_with_a_held_fresh_score():
    r = Rig()
    r.feed(0.7, 0.5)
    assert r.tick(5.9) == []
    assert kinds(r.tick(0.1)) == [("raised", "distress", "medium")]


@pytest.mark.parametrize("spike_s", [0.5, 2.0, 5.5])
def test_spikes_shorter_than_t_on_never_raise_the_dwell_rule(spike_s: float):
    r = Rig(persist_window_s=0.0)
    for _ in range(50):
        r.feed(0.95, spike_s)
        r.feed(0.2, 3.0)
    assert r.events == []


@pytest.mark.parametrize("spike_s", [0.5, 2.0, 3.0])
def test_brief_spikes_every_20_s_never_raise_the_persistent_rule(spike_s: float):
    r = Rig(persist_window_s=12.0, persist_threshold=0.5)
    for _ in range(50):
        r.feed(0.95, spike_s)
        r.feed(0.2, 20.0 - spike_s)
    assert r.events == []


def test_flicker_dip_below_on_threshold_restarts_the_dwell():
    r = Rig(persist_window_s=0.0)
    for _ in range(100):                    # 4 s above, 0.5 s just below on (still above off)
        r.feed(0.6, 4.0)
        r.feed(0.5, 0.5)
    assert r.events == []


def test_the_default_persistent_rule_catches_what_the_dips_hide_from_the_dwell():
    r = Rig()
    got = []
    for _ in range(3):                      # 4 s at 0.65, 0.5 s at 0.5: the mean stays 0.63
        got += r.feed(0.65, 4.0)
        got += r.feed(0.5, 0.5)
    assert kinds(got) == [("raised", "distress", "medium")]
    assert got[0].detail["reason"] == "distress_persistent"


def test_high_score_at_raise_raises_high_directly_but_still_after_t_on():
    r = Rig()
    assert r.feed(0.9, 6.0) == []
    assert kinds(r.feed(0.9, 0.5)) == [("raised", "distress", "high")]
    assert r.m.signal().audio == "high" and r.m.signal().visual == "high"


def test_stale_score_neither_raises_nor_dwells_across_a_gap():
    r = Rig()
    r.feed(0.8, 1.0)
    got = r.tick(30.0)                      # no state for 30 s: stalled, not distress
    assert kinds(got) == [("technical", "stalled", "low")]
    got = r.feed(0.8, 0.5)                  # data resumes: stall clears, dwell starts again
    assert kinds(got) == [("technical_cleared", "stalled", "low")]
    assert r.feed(0.8, 5.5) == []
    assert kinds(r.feed(0.8, 0.5)) == [("raised", "distress", "medium")]


def test_non_finite_scores_are_ignored():
    r = Rig()
    assert r.feed(math.nan, 10) == []
    assert r.m.snapshot()["distress"] is None


def test_flicker_under_the_persistent_threshold_never_raises_with_the_default_rules():
    r = Rig()
    assert r.m.persistent_mean() is None    # no scores yet
    for _ in range(40):                     # 4 s at 0.6, 2 s at 0.4: mean 0.53, never 6 s above on
        r.feed(0.6, 4.0)
        r.feed(0.4, 2.0)
    assert r.events == []


def test_persistent_rule_raises_on_moderate_distress_that_dips_under_on_threshold():
    r = Rig(persist_window_s=20.0, persist_threshold=0.45)
    for _ in range(4):                      # 3 s at 0.6, 2 s at 0.3: time-weighted mean 0.48
        r.feed(0.6, 3.0)
        r.feed(0.3, 2.0)
    assert r.events == []                   # 20 s of scores, from 0.5 s: not yet the whole window
    got = r.feed(0.6, 0.5)
    assert kinds(got) == [("raised", "distress", "medium")]
    assert got[0].detail["reason"] == "distress_persistent"
    assert got[0].detail["persist_window_s"] == 20.0 and got[0].detail["mean"] >= 0.45


def test_persistent_mean_is_time_weighted_and_needs_the_whole_window():
    r = Rig(persist_window_s=10.0)
    r.feed(0.2, 6.0, dt=2.0)                # samples at 2, 4, 6 s
    assert r.m.persistent_mean() is None    # the first sample (2 s) is not 10 s old yet
    r.feed(0.8, 8.0, dt=4.0)                # samples at 10 s and 14 s
    # window [4, 14]: 0.2 from 4 to 10 s, 0.8 from 10 to 14 s
    assert r.m.persistent_mean() == pytest.approx((0.2 * 6 + 0.8 * 4) / 10)
    assert r.m.persistent_mean(r.clock.t + 3.0) == pytest.approx((0.2 * 3 + 0.8 * 7) / 10)


def test_persistent_rule_stays_quiet_under_its_threshold_and_after_a_gap():
    r = Rig(persist_window_s=20.0, persist_threshold=0.45)
    for _ in range(30):                     # mean 0.4
        r.feed(0.5, 3.0)
        r.feed(0.25, 1.0)
    assert r.events == []
    r = Rig(persist_window_s=20.0, persist_threshold=0.45)
    r.feed(0.5, 15.0)
    r.tick(30.0)                            # no state for 30 s: the window starts again
    got = r.feed(0.5, 19.5)
    assert [e for e in got if e.condition == "distress"] == []
    assert r.m.persistent_mean() is None


def test_persistent_condition_clears_only_once_the_mean_falls():
    r = Rig(persist_window_s=20.0, persist_threshold=0.45, latching=False)
    r.feed(0.8, 10.0)                       # raised by the dwell rule
    assert kinds(r.events) == [("raised", "distress", "medium")]
    assert r.feed(0.3, 10.5) == []          # 10 s below off, but the 20 s mean is 0.54: holds
    got = r.feed(0.3, 5.0)                  # the mean falls under 0.45 after 15 s below off
    assert kinds(got) == [("cleared", "distress", "medium")]
    assert r.m.persistent_mean() < 0.45


# ------------------------------------------------------------------------------ clearing, latching

def test_hysteresis_clear_needs_t_off_below_off_threshold():
    r = Rig(latching=False)
    raise_medium(r)
    assert r.feed(0.45, 60) == []           # between off and on: the condition holds
    assert r.feed(0.3, 9.5) == []           # below off, not long enough
    assert r.feed(0.4, 0.5) == []           # back above off: timer restarts
    assert r.feed(0.3, 9.5) == []
    got = r.feed(0.3, 0.5)                  # 10 s below off... counted from the first sample below
    got += r.feed(0.3, 0.5)
    assert kinds(got) == [("cleared", "distress", "medium")]
    assert got[0].detail["reason"] == "condition_cleared"
    assert r.m.snapshot()["active"] is False


def test_latching_keeps_an_unacknowledged_alarm_after_the_condition_passed():
    r = Rig()
    raise_medium(r)
    assert r.feed(0.1, 60) == []            # condition passed, nobody came: still sounding
    snap = r.m.snapshot()
    assert snap["active"] and snap["audible"] and snap["alarms"][0]["present"] is False
    got = r.ack("web:nurse1")
    assert kinds(got) == [("acknowledged", "distress", "medium"), ("cleared", "distress", "medium")]
    assert got[0].by == "web:nurse1" and got[1].by == "web:nurse1"
    assert got[1].detail["reason"] == "acknowledged"
    assert r.m.snapshot()["active"] is False and r.m.signal().visual == "normal"


def test_latched_alarm_takes_back_a_returning_condition_without_a_new_raise():
    r = Rig(t_escalate_s=1000)
    raise_medium(r)
    r.feed(0.1, 20)
    assert r.feed(0.7, 30) == []
    assert r.m.active[0].present is True


def test_acknowledged_alarm_clears_when_the_condition_clears():
    r = Rig()
    raise_medium(r)
    r.ack()
    got = r.feed(0.2, 11)
    assert kinds(got) == [("cleared", "distress", "medium")]
    assert got[0].by == "button"


# ------------------------------------------------------------------------------ escalation

def test_escalates_after_t_escalate_unacknowledged():
    r = Rig(t_escalate_s=120)
    raise_medium(r)
    assert r.feed(0.6, 119.5) == []
    got = r.feed(0.6, 0.5)
    assert kinds(got) == [("escalated", "distress", "high")]
    assert got[0].detail == {"reason": "unacknowledged", "from": "medium"}
    assert r.m.signal().audio == "high"


def test_escalates_at_once_when_the_score_reaches_the_high_threshold():
    r = Rig()
    raise_medium(r)
    got = r.feed(0.86, 0.5)
    assert kinds(got) == [("escalated", "distress", "high")]
    assert got[0].detail["reason"] == "high_threshold"
    assert r.feed(0.95, 60) == []           # once only


def test_acknowledged_alarm_does_not_escalate_by_time():
    r = Rig(t_escalate_s=60, ack_silence_s=600)
    raise_medium(r)
    r.ack()
    assert r.feed(0.6, 300) == []


def test_escalation_by_score_while_silenced_keeps_the_pause():
    r = Rig()
    raise_medium(r)
    r.ack()
    assert kinds(r.feed(0.9, 0.5)) == [("escalated", "distress", "high")]
    sig = r.m.signal()
    assert (sig.visual, sig.audio, sig.paused) == ("high", None, True)


# ------------------------------------------------------------------------------ acknowledge

def test_ack_pauses_audio_then_resounds_if_the_condition_still_holds():
    r = Rig(ack_silence_s=120, t_escalate_s=100)
    raise_medium(r)
    key = r.m.signal().key
    got = r.ack("button")
    assert kinds(got) == [("acknowledged", "distress", "medium")]
    assert got[0].by == "button" and got[0].detail == {"silence_s": 120.0, "long": False}
    sig = r.m.signal()
    assert (sig.visual, sig.audio, sig.paused) == ("medium", None, True)
    snap = r.m.snapshot()
    assert snap["acknowledged"] and snap["acknowledged_by"] == "button" and not snap["audible"]
    assert snap["silenced_for_s"] == 120.0 and snap["silenced_until"].endswith("Z")
    assert r.feed(0.6, 119.5) == []         # no time escalation while acknowledged
    got = r.feed(0.6, 0.5)
    assert kinds(got) == [("resounded", "distress", "medium")]
    sig = r.m.signal()
    assert sig.audio == "medium" and sig.key != key and not sig.paused
    assert r.feed(0.6, 99.5) == []          # escalation timer restarted at the resound
    assert kinds(r.feed(0.6, 0.5)) == [("escalated", "distress", "high")]


def test_long_press_gives_the_longer_silence():
    r = Rig(ack_silence_s=120, long_press_silence_s=600)
    raise_medium(r)
    got = r.ack("button", long=True)
    assert got[0].detail == {"silence_s": 600.0, "long": True}
    assert r.feed(0.6, 599.5) == []
    assert kinds(r.feed(0.6, 0.5)) == [("resounded", "distress", "medium")]


def test_second_ack_during_silence_is_a_silenced_event_that_extends_the_pause():
    r = Rig(ack_silence_s=120)
    raise_medium(r)
    r.ack("button")
    r.feed(0.6, 100)
    got = r.ack("web:sam")
    assert kinds(got) == [("silenced", "distress", "medium")] and got[0].by == "web:sam"
    assert r.feed(0.6, 119.5) == []
    assert kinds(r.feed(0.6, 0.5)) == [("resounded", "distress", "medium")]


def test_ack_with_nothing_active_returns_nothing():
    assert Rig().ack() == []


# ------------------------------------------------------------------------------ alarm fatigue

def test_min_realarm_interval_delays_a_new_alarm():
    r = Rig(min_realarm_interval_s=60, latching=False)
    raise_medium(r)                         # raised at 6 s
    r.ack()
    r.feed(0.1, 11)                         # cleared at ~17 s
    assert kinds(r.events)[-1][0] == "cleared"
    assert r.feed(0.6, 30) == []            # present again after 6 s, but only ~47 s since the raise
    assert r.m.snapshot()["pending"] == "min_realarm_interval"
    got = r.feed(0.6, 20)
    assert kinds(got) == [("raised", "distress", "medium")]
    assert got[0].detail["delayed_by"] == "min_realarm_interval"
    raises = [e for e in r.events if e.kind == "raised"]
    assert len(raises) == 2


def test_hourly_cap_suppresses_with_one_event_then_recovers():
    r = Rig(max_alarms_per_hour=2, min_realarm_interval_s=0, latching=False)
    for _ in range(2):
        raise_medium(r)
        r.ack()
        r.feed(0.1, 11)
    r.events.clear()
    got = r.feed(0.6, 60)
    assert kinds(got) == [("suppressed", "distress", "medium")]
    assert got[0].detail["reason"] == "hourly_cap"
    assert r.m.snapshot()["pending"] == "hourly_cap" and r.m.snapshot()["raised_last_hour"] == 2
    assert r.m.signal().audio is None
    got = r.feed(0.6, 3600)
    assert kinds(got) == [("raised", "distress", "medium")]
    assert got[0].detail["delayed_by"] == "hourly_cap"


def test_snapshot_changes_nothing():
    r = Rig(min_realarm_interval_s=0, latching=False)
    raise_medium(r)
    r.ack()
    r.feed(0.1, 11)
    r.clock.t += 3600.0                     # the raise is now over an hour old
    before = list(r.m._raises)
    assert r.m.snapshot()["raised_last_hour"] == 0
    assert list(r.m._raises) == before      # counted, not pruned, while answering


def test_event_times_follow_the_injected_wall_clock():
    clock, wall = FakeClock(), [1_800_000_000.0]
    m = AlarmMachine(cfg(), clock, wall_clock=lambda: wall[0])
    got = m.set_technical("stalled", True, now=clock.t)
    assert got[0].time == "2027-01-15T08:00:00.000Z"
    wall[0] += 1.5
    got = m.pause(5, "nurse", now=clock.t)
    assert got[0].time == "2027-01-15T08:00:01.500Z" and got[0].detail["until"] == "2027-01-15T08:05:01.500Z"


# ------------------------------------------------------------------------------ no patient

def test_no_patient_low_alarm_and_its_clearing():
    r = Rig(no_patient_minutes=1.0)
    r.feed(state(0.1, face=True), 5)
    assert r.feed(state(0.1, face=False), 59.5) == []
    got = r.feed(state(0.1, face=False), 0.5)
    assert kinds(got) == [("raised", "no_patient", "low")]
    sig = r.m.signal()
    assert (sig.priority, sig.visual, sig.audio) == ("low", "low", "low")
    got = r.feed(state(0.1, face=True), 0.5)
    assert kinds(got) == [("cleared", "no_patient", "low")]
    assert got[0].detail["reason"] == "patient_seen"


def test_no_patient_is_off_by_default_and_not_raised_while_the_camera_is_lost():
    r = Rig()
    assert r.feed(state(0.1, face=False), 3600) == []
    r = Rig(no_patient_minutes=1.0)
    r.m.set_technical("camera_lost", True, "no frames", r.clock.t)
    assert r.feed(state(0.1, face=False), 300) == []


# ------------------------------------------------------------------------------ technical

@pytest.mark.parametrize("condition", TECHNICAL_CONDITIONS)
def test_technical_alarm_raise_and_clear(condition: str):
    r = Rig()
    got = r.m.set_technical(condition, True, "broken", r.clock.t)
    assert kinds(got) == [("technical", condition, "low")] and got[0].detail == {"message": "broken"}
    assert r.m.set_technical(condition, True, "still broken", r.clock.t) == []
    sig = r.m.signal()
    assert (sig.priority, sig.visual, sig.audio) == ("low", "technical", "low")
    snap = r.m.snapshot()
    assert snap["technical"][0]["condition"] == condition
    assert snap["technical"][0]["detail"] == {"message": "still broken"}
    r.clock.t += 30
    got = r.m.set_technical(condition, False, now=r.clock.t)
    assert kinds(got) == [("technical_cleared", condition, "low")] and got[0].detail["duration_s"] == 30.0
    assert r.m.set_technical(condition, False, now=r.clock.t) == []
    assert r.m.signal().visual == "normal"


def test_unknown_technical_condition_is_an_error():
    with pytest.raises(ValueError, match="unknown technical condition"):
        Rig().m.set_technical("gremlins", True)


def test_stall_detection_with_startup_grace():
    r = Rig(stall_s=10)
    assert r.tick(29.0) == []               # before the first state: 3 x stall_s grace
    assert kinds(r.tick(1.0)) == [("technical", "stalled", "low")]
    assert kinds(r.feed(0.1, 0.5)) == [("technical_cleared", "stalled", "low")]
    assert r.tick(9.5) == []
    assert kinds(r.tick(0.5)) == [("technical", "stalled", "low")]
    assert r.tick(5) == []                  # raised once


def test_ack_silences_technical_alarms_too_and_they_resound():
    r = Rig(ack_silence_s=60, stall_s=600)
    r.m.set_technical("overheat", True, "CPU 85 C", r.clock.t)
    got = r.ack("button")
    assert kinds(got) == [("acknowledged", "overheat", "low")]
    assert r.m.signal().audio is None and r.m.signal().visual == "technical"
    r.clock.t += 60
    assert kinds(r.m.tick(r.clock.t)) == [("resounded", "overheat", "low")]


def test_combined_signal_highest_priority_wins():
    r = Rig()
    r.feed(0.6, 0.5)
    r.m.set_technical("mic_lost", True, "", r.clock.t)
    tech_key = r.m.signal().key
    r.feed(0.6, 6.0)
    sig = r.m.signal()
    assert (sig.priority, sig.visual, sig.audio) == ("medium", "medium", "medium")
    got = r.ack()                           # acknowledges both, distress first
    assert [e.condition for e in got] == ["distress", "mic_lost"]
    assert r.m.signal().audio is None
    r.clock.t += 200                        # silence over: both resound
    r.m.update(0.6, r.clock.t)
    sig = r.m.signal()
    assert sig.audio == "medium" and sig.key != tech_key
    assert r.m.snapshot()["condition"] == "distress"
    assert [a["condition"] for a in r.m.snapshot()["alarms"]] == ["distress", "mic_lost"]


def test_technical_pattern_beats_no_patient():
    r = Rig(no_patient_minutes=1.0)
    r.feed(state(0.1, face=False), 60)
    r.m.set_technical("model_failure", True, "face model", r.clock.t)
    assert r.m.signal().visual == "technical"


def test_snapshot_is_json_ready_and_complete():
    import json

    r = Rig()
    raise_medium(r)
    r.m.set_technical("overheat", True, "hot", r.clock.t)
    snap = r.m.snapshot()
    json.dumps(snap)
    for key in ("active", "priority", "condition", "since", "acknowledged", "silenced_until", "audible",
                "technical", "signal"):
        assert key in snap
    assert (snap["priority"], snap["condition"], snap["audible"]) == ("medium", "distress", True)
    assert snap["signal"]["visual"] == "medium"


# ------------------------------------------------------------------------------ alarm service

def make_hub(clock: FakeClock, **alarm: object) -> Hub:
    config = dataclasses.replace(Config(), alarm=cfg(**alarm))
    return Hub(config, clock=clock)


def test_service_emits_through_the_hub_recording_before_announcing():
    clock = FakeClock()
    hub = make_hub(clock)
    order: list[str] = []
    hub.add_recorder(lambda e: order.append(f"record {e.kind}"))
    sub = hub.events.subscribe()
    svc = AlarmService(hub, clock=clock, thermal_glob=None)
    svc.install()
    for _ in range(13):
        clock.t += 0.5
        svc.on_state(state(0.7))
    assert order == ["record raised"]
    assert sub.get_nowait().kind == "raised"
    assert hub.alarm_snapshot()["active"] is True
    event = hub.acknowledge("web:ann", long=False)
    assert event is not None and event.kind == "acknowledged" and event.by == "web:ann"
    assert order[-1] == "record acknowledged"
    assert hub.acknowledge("button") is not None   # second: extends the silence
    assert sub.get_nowait().kind == "acknowledged"


def test_service_publishes_the_signal_when_it_changes():
    clock = FakeClock()
    hub = make_hub(clock)
    signals = hub.signals.subscribe(maxsize=100)
    svc = AlarmService(hub, clock=clock, thermal_glob=None)
    svc.install()
    assert signals.get_nowait() == Signal("none", "normal", None, False, "")
    for _ in range(13):
        clock.t += 0.5
        svc.on_state(state(0.7))
        svc.tick()
    raised = signals.get_nowait()
    assert (raised.visual, raised.audio) == ("medium", "medium") and signals.pending() == 0   # once
    hub.acknowledge("web:ann")
    assert signals.get_nowait() == dataclasses.replace(raised, audio=None, key="", paused=True)
    assert svc.machine.signal() == hub.signals.latest


def test_service_turns_health_into_technical_alarms():
    clock = FakeClock()
    hub = make_hub(clock)
    svc = AlarmService(hub, clock=clock, thermal_glob=None)
    hub.set_health("camera", "down", "no frames for 5 s")
    hub.set_health("microphone", "ok")
    hub.set_health("face", "down", "model missing")
    hub.set_health("voice", "disabled")
    svc.check_health()
    snap = svc.snapshot()
    tech = {a["condition"]: a["detail"] for a in snap["technical"]}
    assert tech == {"camera_lost": {"message": "camera: no frames for 5 s"},
                    "model_failure": {"message": "face: model missing"}}
    hub.set_health("camera", "ok")
    svc.check_health()
    assert {a["condition"] for a in svc.snapshot()["technical"]} == {"model_failure"}


def test_cpu_temperature_overheat_with_hysteresis(tmp_path):
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (tmp_path / "thermal_zone1").mkdir()
    (tmp_path / "thermal_zone1" / "temp").write_text("41000\n")
    temp = zone / "temp"
    pattern = str(tmp_path / "thermal_zone*" / "temp")
    clock = FakeClock()
    hub = make_hub(clock, temperature_limit_c=80.0)
    svc = AlarmService(hub, clock=clock, thermal_glob=pattern, temp_every_s=5.0)

    def at(millideg: int) -> set[str]:
        temp.write_text(f"{millideg}\n")
        clock.t += 5.0
        svc.check_temperature()
        return {a["condition"] for a in svc.snapshot()["technical"]}

    assert at(79000) == set()
    assert at(80000) == {"overheat"}
    assert hub.metrics["cpu_temp_c"] == 80.0
    assert at(76000) == {"overheat"}        # within 5 C of the limit: still hot
    assert at(74900) == set()
    assert read_cpu_temperature(str(tmp_path / "nothing*")) is None


async def test_serve_end_to_end_states_ack_and_stop():
    clock = FakeClock()
    hub = make_hub(clock)
    events = hub.events.subscribe()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop, clock=clock, thermal_glob=None))
    await asyncio.sleep(0)
    for _ in range(13):                     # the service times states when it processes them
        clock.t += 0.5
        hub.states.publish(state(0.7))
        await asyncio.sleep(0)
    assert events.get_nowait().kind == "raised"
    assert hub.alarm_snapshot()["signal"]["audio"] == "medium"
    assert hub.acknowledge("button").kind == "acknowledged"
    assert hub.signals.latest is not None and hub.signals.latest.audio is None   # acknowledged: silent
    stop.set()
    await asyncio.wait_for(task, 5)
    assert hub.states.subscribers == 0


# ------------------------------------------------------------------------------- vocal distress

def vocal(present: bool, distress: float = 0.1) -> EmotionState:
    s = state(distress)
    return dataclasses.replace(s, sounds={"now": "scream" if present else "speech", "shares": {},
                                          "vocal_distress": {"present": present, "scream_s": 3.0 if present else 0.0,
                                                             "distress_sound_s": 3.0 if present else 0.0,
                                                             "window_s": 30.0, "score": 0.9, "heard": "scream"}})


def test_vocal_distress_raises_its_own_alarm_and_latches() -> None:
    r = Rig()
    r.feed(vocal(False), 5)
    got = r.feed(vocal(True), 1)
    assert [(e.kind, e.condition, e.priority) for e in got] == [("raised", "vocal_distress", "medium")]
    assert got[0].detail["heard"] == "scream" and got[0].detail["reason"] == "distress_sounds"
    assert r.m.signal(r.clock.t).audio == "medium"
    snap = r.m.snapshot(r.clock.t)
    assert snap["condition"] == "vocal_distress" and snap["vocal_distress_present"]
    r.feed(vocal(False), 30)                    # the sounds stop: latched until someone comes
    assert [a.condition for a in r.m.active] == ["vocal_distress"] and not r.m.active[0].present
    got = r.m.acknowledge("web:nurse", now=r.clock.t)
    assert [e.kind for e in got] == ["acknowledged", "cleared"] and not r.m.active


def test_vocal_distress_escalates_when_nobody_comes_and_resounds_after_silence() -> None:
    r = Rig(t_escalate_s=60.0, ack_silence_s=30.0)
    r.feed(vocal(True), 61)
    assert r.m.active[0].priority == "high"
    assert any(e.kind == "escalated" and e.condition == "vocal_distress" for e in r.events)
    r.m.acknowledge("button", now=r.clock.t)
    assert r.m.signal(r.clock.t).audio is None
    got = r.feed(vocal(True), 31)
    assert any(e.kind == "resounded" for e in got) and r.m.signal(r.clock.t).audio == "high"


def test_vocal_and_face_distress_share_the_fatigue_rules() -> None:
    r = Rig(min_realarm_interval_s=60.0, t_on_s=1.0, latching=False)
    r.feed(state(0.9), 3)                                  # face distress raised
    r.feed(state(0.1), 15)                                 # passes (not latching): cleared
    assert not r.m.active
    got = r.feed(vocal(True), 10)                          # screaming 18 s after the last alarm
    assert not any(e.kind == "raised" for e in got)
    got = r.feed(vocal(True), 50)
    raised = [e for e in got if e.kind == "raised"]
    assert len(raised) == 1 and raised[0].detail["delayed_by"] == "min_realarm_interval"


def test_vocal_distress_without_sound_stage_never_raises() -> None:
    r = Rig()
    r.feed(state(0.1), 60)
    assert not r.events and r.m.snapshot(r.clock.t)["vocal_distress_present"] is False


# ------------------------------------------------------------------------------ restore after a restart

def test_restore_sounds_a_latched_alarm_again_until_acknowledged():
    r = Rig()
    events = r.m.restore("distress", "high", since_time="2026-01-01T00:00:00.000Z", age_s=300.0,
                         acknowledged_by="web:ann", detail={"raised_id": "abc"}, now=r.clock.t)
    assert kinds(events) == [("restored", "distress", "high")]
    assert events[0].detail["reason"] == "service_restarted" and events[0].detail["raised_id"] == "abc"
    snap = r.m.snapshot(r.clock.t)
    assert snap["active"] and snap["audible"] and snap["signal"]["audio"] == "high"
    assert snap["alarms"][0]["present"] is False and snap["alarms"][0]["age_s"] == 300.0
    assert snap["since"] == "2026-01-01T00:00:00.000Z"
    assert r.m.restore("distress", "medium", since_time="x", now=r.clock.t) == []   # one per condition
    assert r.feed(0.1, 60) == []                      # calm data: still latched, still sounding
    assert r.m.signal().audio == "high"
    got = r.ack("button")
    assert kinds(got) == [("acknowledged", "distress", "high"), ("cleared", "distress", "high")]
    assert got[1].detail["reason"] == "acknowledged" and not r.m.active


def test_restored_alarm_takes_back_its_returning_condition_and_escalates():
    r = Rig(t_escalate_s=30.0)
    r.m.restore("distress", "medium", since_time="2026-01-01T00:00:00.000Z", now=r.clock.t)
    got = r.feed(0.6, 10)                             # the condition is back: no second raise
    assert [e.kind for e in got] == []
    assert r.m.active[0].present is True
    got = r.feed(0.6, 25)
    assert kinds(got) == [("escalated", "distress", "high")]


def test_restore_keeps_the_remaining_silence_then_resounds_if_the_condition_holds():
    r = Rig()
    events = r.m.restore("distress", "medium", since_time="2026-01-01T00:00:00.000Z",
                         acknowledged_by="button", silenced_for_s=40.0, now=r.clock.t)
    assert events[0].by == "button" and events[0].detail["acknowledged"] is True
    assert events[0].detail["silenced_until"]
    sig = r.m.signal()
    assert sig.audio is None and sig.paused and sig.visual == "medium"
    r.feed(0.6, 30)                                   # the condition returns while silenced
    got = r.feed(0.6, 15)
    assert kinds(got) == [("resounded", "distress", "medium")]
    assert r.m.signal().audio == "medium"


def test_restore_refuses_conditions_it_cannot_hold():
    m = AlarmMachine(cfg(), FakeClock())
    with pytest.raises(ValueError, match="cannot restore 'camera_lost'"):
        m.restore("camera_lost", "low", since_time="x")
    with pytest.raises(ValueError, match="priority"):
        m.restore("distress", "none", since_time="x")


def _store_hub(tmp_path, clock: FakeClock) -> tuple[Hub, object]:  # type: ignore[no-untyped-def]
    from edge import store as store_mod

    config = dataclasses.replace(Config(), alarm=cfg(), service=dataclasses.replace(Config().service,
                                                                                    state_dir=str(tmp_path)))
    hub = Hub(config, clock=clock)
    return hub, store_mod.attach(hub)


def test_service_restores_open_alarms_from_the_store_and_closes_stale_technical_ones(tmp_path):
    wall = [1_800_000_000.0]
    clock = FakeClock()
    hub, store = _store_hub(tmp_path, clock)
    svc = AlarmService(hub, clock=clock, thermal_glob=None, wall_clock=lambda: wall[0])
    for _ in range(13):
        clock.t += 0.5
        svc.on_state(state(0.7))
    hub.set_health("camera", "down", "unplugged")
    svc.check_health()
    assert {a.condition for a in svc.machine.active} == {"distress", "camera_lost"}
    store.close()  # type: ignore[attr-defined]

    clock2 = FakeClock(50.0)                          # a new process: a new monotonic clock
    hub2, store2 = _store_hub(tmp_path, clock2)
    svc2 = AlarmService(hub2, clock=clock2, thermal_glob=None, wall_clock=lambda: wall[0])
    order: list[str] = []
    hub2.add_recorder(lambda e: order.append(e.kind))
    assert svc2.restore(store2) == 1                  # type: ignore[arg-type]
    assert sorted(order) == ["restored", "technical_cleared"]
    assert [a.condition for a in svc2.machine.active] == ["distress"]
    assert svc2.snapshot()["audible"]
    assert svc2.restore(store2) == 0                  # type: ignore[arg-type]   # already held
    opened = store2.open_alarms()                     # type: ignore[attr-defined]
    assert [a["condition"] for a in opened] == ["distress"] and opened[0]["restored"] == 1


# ------------------------------------------------------------------------ pause: care in progress

def test_pause_acknowledges_a_sounding_alarm_and_ends_by_itself() -> None:
    r = Rig()
    raise_medium(r)
    assert r.m.signal(r.clock.t).audio == "medium"
    got = r.m.pause(15, "web:Ana", r.clock.t)
    assert kinds(got) == [("paused", "monitoring", "none"), ("acknowledged", "distress", "medium")]
    assert got[0].by == got[1].by == "web:Ana" and got[1].detail["reason"] == "pause"
    sig = r.m.signal(r.clock.t)
    assert sig.audio is None and sig.visual == "paused" and sig.monitoring_paused
    snap = r.m.snapshot(r.clock.t)
    assert snap["pause"]["by"] == "web:Ana" and snap["pause"]["minutes"] == 15
    assert snap["pause"]["remaining_s"] == 900.0 and snap["pause"]["until"] == got[0].detail["until"]
    r.feed(0.1, 60)                              # the care calms the patient: latched, still silent
    assert r.m.signal(r.clock.t).audio is None
    assert r.m.snapshot(r.clock.t)["pause"]["remaining_s"] == pytest.approx(840.0)
    r.feed(0.1, 840)                             # the pause runs out: resumed, reminder tone once
    resumed = [e for e in r.events if e.kind == "resumed"]
    assert len(resumed) == 1 and resumed[0].by is None and resumed[0].detail["reason"] == "pause_ended"
    assert r.m.snapshot(r.clock.t)["pause"] is None
    sig = r.m.signal(r.clock.t)
    assert sig.audio == "reminder" and sig.key.startswith("reminder:") and not sig.monitoring_paused
    r.tick(6.0)
    assert r.m.signal(r.clock.t).audio is None   # the reminder is one short tone, not an alarm


def test_no_distress_alarm_is_raised_during_a_pause_but_technical_ones_sound() -> None:
    r = Rig()
    r.feed(0.1, 2)
    assert kinds(r.m.pause(5, "button", r.clock.t)) == [("paused", "monitoring", "none")]
    r.feed(0.9, 60)                              # sustained distress while the nurse washes the patient
    r.feed(vocal(True, 0.9), 30)
    assert [e for e in r.events if e.kind == "raised"] == []
    assert r.m.snapshot(r.clock.t)["pending"] == "paused"
    got = r.m.set_technical("camera_lost", True, "unplugged", r.clock.t)
    assert kinds(got) == [("technical", "camera_lost", "low")]
    assert r.m.signal(r.clock.t).audio == "low" and r.m.signal(r.clock.t).visual == "technical"
    r.m.set_technical("camera_lost", False, now=r.clock.t)
    r.feed(0.9, 210)                             # 5 min after the pause: the distress is raised now
    assert [(e.kind, e.condition) for e in r.events if e.kind in ("resumed", "raised")][:2] == [
        ("resumed", "monitoring"), ("raised", "distress")]


def test_resume_ends_the_pause_and_a_held_alarm_sounds_again() -> None:
    r = Rig()
    raise_medium(r)
    r.m.pause(30, "mqtt:desk", r.clock.t)
    r.feed(0.8, 10)
    got = r.m.resume("web:Ana", r.clock.t)
    assert [(e.kind, e.by) for e in got] == [("resumed", "web:Ana"), ("resounded", None)]
    assert got[0].detail["reason"] == "resumed_by_person"
    assert r.m.signal(r.clock.t).audio == "medium" and r.m.signal(r.clock.t).key != ""
    assert r.m.resume("web:Ana", r.clock.t) == []          # not paused any more
    with pytest.raises(ValueError, match="5, 15, 30"):
        r.m.pause(10, "web:Ana", r.clock.t)


def test_button_press_mapping() -> None:
    r = Rig(button_pause_minutes=15)
    assert r.m.press(False, now=r.clock.t) == []                    # nothing to do
    assert kinds(r.m.press(True, now=r.clock.t)) == [("paused", "monitoring", "none")]
    assert r.m.snapshot(r.clock.t)["pause"]["minutes"] == 15
    assert [e.kind for e in r.m.press(False, now=r.clock.t)] == ["resumed"]
    raise_medium(r)
    assert [e.kind for e in r.m.press(False, now=r.clock.t)] == ["acknowledged"]
    r.tick(121.0)
    r.feed(0.8, 1)                                                  # sounding again after 120 s
    got = r.m.press(True, now=r.clock.t)                            # long press, alarm sounding
    assert [e.kind for e in got] == ["acknowledged"] and got[0].detail["silence_s"] == 600.0


def test_no_stall_alarm_when_no_state_is_expected() -> None:
    r = Rig()
    r.feed(0.1, 2)
    r.clock.t += 60.0
    assert r.m.tick(r.clock.t, expect_states=False) == []    # the media ended: nothing should arrive
    assert kinds(r.m.tick(r.clock.t)) == [("technical", "stalled", "low")]
