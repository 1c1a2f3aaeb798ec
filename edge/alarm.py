"""Distress alarm state machine: pure logic with injected clocks (monotonic for every timer, wall
for the time written on each event), no asyncio and no I/O.

Conditions and priorities (IEC 60601-1-8 style):

- ``distress``: raised at medium priority when the distress score stays >= ``on_threshold`` for
  ``t_on_s`` (``distress_sustained``), or, with ``persist_window_s`` > 0, when its mean over the
  last ``persist_window_s`` reaches ``persist_threshold`` (``distress_persistent``: moderate
  distress that dips under ``on_threshold`` now and then); becomes high when unacknowledged for
  ``t_escalate_s`` or when the score reaches ``high_threshold``. The condition clears only after
  ``t_off_s`` below ``off_threshold`` with the mean under ``persist_threshold`` (hysteresis). With
  ``latching`` a raised alarm stays until a person acknowledges it.
- ``vocal_distress``: raised at medium priority when the sound stage hears sustained or repeated
  screaming, crying or moaning (``EmotionState.sounds["vocal_distress"]["present"]``, decided by
  :class:`~edge.vocal_distress.VocalDistressTracker`); the same latching, acknowledge, escalation
  and fatigue rules as ``distress`` (the two share the re-alarm spacing and the hourly cap).
- ``no_patient``: low priority, no face seen for ``no_patient_minutes`` (0 = off).
- technical (``camera_lost``, ``mic_lost``, ``model_failure``, ``overheat``, ``stalled``,
  ``store_failure``): low priority with their own visual pattern, cleared when the fault goes.

Acknowledging pauses audio for ``ack_silence_s`` (``long_press_silence_s`` for a long press); if the
condition still holds afterwards the alarm sounds again (``resounded``). New distress alarms are
spaced by ``min_realarm_interval_s`` and capped at ``max_alarms_per_hour``.

**Pausing monitoring** (:meth:`AlarmMachine.pause`, one of ``PAUSE_MINUTES``): care in progress
(washing, turning the patient). No distress-type alarm is raised while it lasts and one already
active is acknowledged for the whole pause; technical alarms still sound. It ends by itself
(``resumed``, reason ``pause_ended``, with a short ``reminder`` tone in :meth:`signal`) or early
with :meth:`resume`. A distress condition still present afterwards is raised then.

Every transition is returned as an :class:`~edge.events.AlarmEvent`; :meth:`AlarmMachine.signal`
says what should sound and flash now (a :class:`Signal`); :meth:`AlarmMachine.snapshot` describes
it all for the status page and changes nothing. :meth:`AlarmMachine.restore` takes back, after a restart, a
distress-type alarm that was still open (``restored``): latched, with its priority, acknowledger and
remaining silence.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edge.config import AlarmConfig
from edge.events import AlarmEvent, EmotionState, utc_iso

PRIORITY_RANK: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}
DISTRESS = "distress"
VOCAL_DISTRESS = "vocal_distress"
DISTRESS_CONDITIONS = (DISTRESS, VOCAL_DISTRESS)
NO_PATIENT = "no_patient"
TECHNICAL_CONDITIONS: tuple[str, ...] = (
    "camera_lost", "mic_lost", "model_failure", "overheat", "stalled", "store_failure",
)
# distress-type condition -> the attribute that holds its alarm (what restore() may take back; a
# condition whose attribute this machine lacks is not restorable here)
RESTORE_SLOTS: dict[str, str] = {DISTRESS: "_distress", "vocal_distress": "_vocal"}
MONITORING = "monitoring"   # the condition of ``paused`` / ``resumed`` events
PAUSE_MINUTES: tuple[int, ...] = (5, 15, 30)
REMINDER_S = 5.0             # how long after a pause ends by itself the reminder tone may start
STARTUP_GRACE_FACTOR = 3.0   # before the first state, "stalled" waits stall_s x this (models load)
HOUR_S = 3600.0


def _iso_plus(iso: str, seconds: float) -> str:
    """An ISO-8601 UTC time (as written by utc_now_iso) plus some seconds."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ActiveAlarm:
    """One raised alarm (distress, no_patient or a technical condition)."""

    condition: str
    priority: str
    since: float                  # monotonic time it was raised
    since_time: str               # UTC ISO of the raise event
    unacked_since: float          # raise or last resound: the escalation timer
    generation: int               # changes whenever its audio should start again
    acknowledged: bool = False    # True while its audio is paused
    acknowledged_by: str | None = None
    silenced_until: float | None = None
    silenced_until_time: str | None = None
    present: bool = True          # the condition still holds (False: only latched)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def technical(self) -> bool:
        return self.condition in TECHNICAL_CONDITIONS

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "priority": self.priority,
            "technical": self.technical,
            "since": self.since_time,
            "age_s": round(now - self.since, 1),
            "acknowledged": self.acknowledged,
            "acknowledged_by": self.acknowledged_by,
            "silenced_until": self.silenced_until_time if self.acknowledged else None,
            "silenced_for_s": (round(max(0.0, self.silenced_until - now), 1)
                               if self.acknowledged and self.silenced_until is not None else 0.0),
            "present": self.present,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class Signal:
    """What the buzzer and LED should do now (derived, never stored)."""

    priority: str        # highest active priority: high | medium | low | none
    visual: str          # LED pattern: high | medium | low | technical | normal
    audio: str | None    # buzzer pattern (high | medium | low) or None = silent
    paused: bool         # an active alarm has its audio paused by an acknowledge
    key: str             # changes whenever the audio burst should start again
    monitoring_paused: bool = False   # care in progress: distress alarms are not raised


class AlarmMachine:
    """The alarm logic. Call :meth:`update` with each fused state (or a bare distress score) and
    :meth:`tick` on a timer; both return the events of the transitions they caused."""

    def __init__(self, config: AlarmConfig, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock              # monotonic: every timer
        self.wall_clock = wall_clock    # epoch seconds: the time written on each event
        now = clock()
        self._created = now
        self._score: float | None = None
        self._score_t: float | None = None
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._history: deque[tuple[float, float]] = deque()   # (time, score) over persist_window_s
        self._present = False                 # distress condition after dwell and hysteresis
        self._present_reason = "distress_sustained"
        self._pending: str | None = None      # why a present condition is not raised (yet)
        self._suppressed_reported = False
        self._raises: deque[float] = deque()  # raise times of distress alarms (last hour)
        self._last_raise: float | None = None
        self._distress: ActiveAlarm | None = None
        self._vocal: ActiveAlarm | None = None
        self._vocal_present = False
        self._vocal_detail: dict[str, Any] = {}
        self._vocal_pending: str | None = None
        self._low: dict[str, ActiveAlarm] = {}  # no_patient and technical alarms
        self._states_seen = False
        self._face_seen = now
        self._last_update: float | None = None
        self._generation = 0
        self._pause: dict[str, Any] | None = None   # by, since (ISO), minutes, until (monotonic), until_time
        self._reminder: tuple[float, str] | None = None   # (end of the window, key) after a pause ran out

    # ------------------------------------------------------------------------------ inputs

    def update(self, state_or_score: EmotionState | float, now: float | None = None) -> list[AlarmEvent]:
        """Feed one fused state (or a bare distress score 0..1). Non-finite scores are ignored."""
        now = self._now(now)
        if isinstance(state_or_score, EmotionState):
            score = state_or_score.distress
            vocal = state_or_score.sounds.get("vocal_distress") if state_or_score.sounds else None
            if vocal is not None:
                self._vocal_present = bool(vocal.get("present"))
                self._vocal_detail = {k: v for k, v in vocal.items() if k != "present"}
            self._states_seen = True
            if "face" in state_or_score.live:
                self._face_seen = now
        else:
            score = state_or_score
        score = float(score)
        if not math.isfinite(score):
            return self.tick(now)
        score = min(1.0, max(0.0, score))
        c = self.config
        if self._score_t is None or now - self._score_t > c.stall_s:
            self._above_since = self._below_since = None   # no dwell across a gap in the data
            self._history.clear()
        self._score, self._score_t, self._last_update = score, now, now
        if c.persist_window_s > 0:
            self._history.append((now, score))
            start = now - c.persist_window_s
            while len(self._history) > 1 and self._history[1][0] <= start:
                self._history.popleft()   # the first kept sample holds its value at the window's start
        if score >= c.on_threshold:
            self._above_since = now if self._above_since is None else self._above_since
        else:
            self._above_since = None
        if score < c.off_threshold:
            self._below_since = now if self._below_since is None else self._below_since
        else:
            self._below_since = None
        events = self.set_technical("stalled", False, now=now) if "stalled" in self._low else []
        return events + self._evaluate(now)

    def persistent_mean(self, now: float | None = None) -> float | None:
        """The time-weighted mean distress score over the last ``persist_window_s`` (each score
        holds until the next); None while the rule is off or the scores do not yet cover the window."""
        window = self.config.persist_window_s
        now = self._now(now)
        if window <= 0 or not self._history or self._history[0][0] > now - window:
            return None
        start, area = now - window, 0.0
        points = list(self._history)
        for (t, score), (t_next, _) in zip(points, points[1:] + [(now, 0.0)], strict=True):
            area += score * max(0.0, min(t_next, now) - max(t, start))
        return area / window

    def tick(self, now: float | None = None, expect_states: bool = True) -> list[AlarmEvent]:
        """Advance timers: dwell, hysteresis, escalation, end of silence, stall, no patient.
        ``expect_states`` False (every source switched off or played to its end): no stall check."""
        now = self._now(now)
        events: list[AlarmEvent] = []
        c = self.config
        if not expect_states:
            pass
        elif self._last_update is None:
            if now - self._created >= c.stall_s * STARTUP_GRACE_FACTOR:
                events += self.set_technical("stalled", True, "no state since start", now)
        elif now - self._last_update >= c.stall_s:
            events += self.set_technical("stalled", True, f"no state for {now - self._last_update:.0f} s", now)
        return events + self._evaluate(now)

    def set_technical(self, condition: str, active: bool, detail: str | dict[str, Any] = "",
                      now: float | None = None) -> list[AlarmEvent]:
        """Raise or clear a technical condition; repeated calls with the same state only update
        the detail."""
        if condition not in TECHNICAL_CONDITIONS:
            raise ValueError(f"unknown technical condition {condition!r}; use one of {', '.join(TECHNICAL_CONDITIONS)}")
        now = self._now(now)
        info = detail if isinstance(detail, dict) else ({"message": detail} if detail else {})
        existing = self._low.get(condition)
        if active and existing is None:
            alarm, event = self._new_alarm(condition, "low", "technical", now, info)
            self._low[condition] = alarm
            return [event]
        if active and existing is not None:
            existing.detail = dict(info)
            return []
        if existing is not None:
            del self._low[condition]
            return [self._event("technical_cleared", existing, detail={**info, "duration_s": round(now - existing.since, 1)})]
        return []

    def acknowledge(self, by: str, long: bool = False, now: float | None = None) -> list[AlarmEvent]:
        """A person acknowledged (button, web, MQTT): pause the audio of every active alarm for
        ack_silence_s (long: long_press_silence_s). A latched distress alarm whose condition has
        passed clears. Returns the events, highest priority first; [] if nothing was active."""
        now = self._now(now)
        c = self.config
        silence = c.long_press_silence_s if long else c.ack_silence_s
        events: list[AlarmEvent] = []
        for alarm in self._alarms():
            kind = "silenced" if alarm.acknowledged else "acknowledged"
            until = now + silence if alarm.silenced_until is None or not alarm.acknowledged \
                else max(alarm.silenced_until, now + silence)
            alarm.acknowledged, alarm.acknowledged_by, alarm.silenced_until = True, by, until
            event = self._event(kind, alarm, by=by, detail={"silence_s": round(until - now, 1), "long": long})
            alarm.silenced_until_time = _iso_plus(event.time, until - now)
            events.append(event)
            if alarm.condition in DISTRESS_CONDITIONS and not alarm.present:
                events.append(self._clear_distress("acknowledged", now, alarm.condition))
        return events

    @property
    def monitoring_paused(self) -> bool:
        return self._pause is not None

    def pause(self, minutes: int, by: str, now: float | None = None) -> list[AlarmEvent]:
        """Pause monitoring for ``minutes`` (one of PAUSE_MINUTES): care in progress. Returns the
        ``paused`` event, then the acknowledgements of the distress alarms it silences. Pausing
        again while paused starts the new length from now."""
        if isinstance(minutes, bool) or minutes not in PAUSE_MINUTES:
            raise ValueError(f"pause minutes must be one of {', '.join(map(str, PAUSE_MINUTES))}, got {minutes!r}")
        now = self._now(now)
        until = now + minutes * 60.0
        event = AlarmEvent(kind="paused", condition=MONITORING, priority="none", by=by, time=self._time(),
                           detail={"minutes": minutes, "until": None})
        event.detail["until"] = _iso_plus(event.time, minutes * 60.0)
        self._pause = {"by": by, "since": event.time, "minutes": minutes, "until": until,
                       "until_time": event.detail["until"]}
        self._reminder = None
        self._pending = self._vocal_pending = None
        events = [event]
        for alarm in [a for a in self._alarms() if a.condition in DISTRESS_CONDITIONS]:
            kind = "silenced" if alarm.acknowledged else "acknowledged"
            alarm.acknowledged, alarm.acknowledged_by = True, by
            alarm.silenced_until = max(alarm.silenced_until or now, until)
            alarm.silenced_until_time = _iso_plus(event.time, alarm.silenced_until - now)
            events.append(self._event(kind, alarm, by=by, detail={
                "silence_s": round(alarm.silenced_until - now, 1), "long": False, "reason": "pause"}))
            if not alarm.present:
                events.append(self._clear_distress("acknowledged", now, alarm.condition))
        return events

    def resume(self, by: str | None, now: float | None = None) -> list[AlarmEvent]:
        """End a pause early (``by`` a person); [] when monitoring is not paused. An alarm the
        pause silenced sounds again at once if its condition still holds."""
        now = self._now(now)
        if self._pause is None:
            return []
        return self._end_pause(now, by, "resumed_by_person") + self._evaluate(now)

    def press(self, long: bool, by: str = "button", now: float | None = None) -> list[AlarmEvent]:
        """The bedside button. With an alarm sounding: acknowledge (short: ack_silence_s, long:
        long_press_silence_s). With none sounding: a long press pauses monitoring for
        button_pause_minutes (again: starts it anew), a short press ends a pause, else it
        acknowledges whatever is active (nothing: [])."""
        now = self._now(now)
        audible = self.signal(now).audio not in (None, "reminder")
        if not audible and long:
            return self.pause(self.config.button_pause_minutes, by, now)
        if not audible and self._pause is not None:
            return self.resume(by, now)
        return self.acknowledge(by, long, now)

    def _end_pause(self, now: float, by: str | None, reason: str) -> list[AlarmEvent]:
        pause, self._pause = self._pause, None
        assert pause is not None
        for alarm in self._alarms():   # the pause's silence ends with it
            if (alarm.condition in DISTRESS_CONDITIONS and alarm.acknowledged
                    and alarm.silenced_until is not None and alarm.silenced_until <= pause["until"] + 1e-6):
                alarm.silenced_until = min(alarm.silenced_until, now)
        if reason == "pause_ended":
            self._generation += 1
            self._reminder = (now + REMINDER_S, f"reminder:{self._generation}")
        return [AlarmEvent(kind="resumed", condition=MONITORING, priority="none", by=by, time=self._time(), detail={
            "reason": reason, "minutes": pause["minutes"], "paused_by": pause["by"],
            "paused_s": round(now - (pause["until"] - pause["minutes"] * 60.0), 1)})]

    def restore(self, condition: str, priority: str, *, since_time: str, age_s: float = 0.0,
                acknowledged_by: str | None = None, silenced_for_s: float = 0.0,
                detail: dict[str, Any] | None = None, now: float | None = None) -> list[AlarmEvent]:
        """Take back a distress-type alarm that was open when the service stopped (raised at
        ``since_time``, ``age_s`` ago). It is latched, since its condition is unknown until the
        data shows it again; it keeps ``priority`` and, while ``silenced_for_s`` lasts, an
        acknowledge's pause, else it sounds again. Returns the ``restored`` event; [] when that
        condition already has an alarm."""
        slot = RESTORE_SLOTS.get(condition)
        if slot is None or not hasattr(self, slot):
            raise ValueError(f"cannot restore {condition!r}; restorable: "
                             f"{', '.join(c for c, a in RESTORE_SLOTS.items() if hasattr(self, a))}")
        if priority not in ("low", "medium", "high"):
            raise ValueError(f"cannot restore {condition!r} at priority {priority!r}")
        now = self._now(now)
        if getattr(self, slot) is not None:
            return []
        self._generation += 1
        alarm = ActiveAlarm(condition, priority, since=now - max(0.0, age_s), since_time=since_time,
                            unacked_since=now, generation=self._generation, acknowledged_by=acknowledged_by,
                            present=False, detail=dict(detail or {}))
        paused = silenced_for_s > 0
        if paused:
            alarm.acknowledged, alarm.silenced_until = True, now + silenced_for_s
        setattr(self, slot, alarm)
        event = self._event("restored", alarm, by=acknowledged_by if paused else None, detail={
            **alarm.detail, "reason": "service_restarted", "raised_at": since_time, "acknowledged": paused,
            "silenced_until": None})
        if paused:
            alarm.silenced_until_time = event.detail["silenced_until"] = _iso_plus(event.time, silenced_for_s)
        return [event]

    # ------------------------------------------------------------------------------ outputs

    def signal(self, now: float | None = None) -> Signal:
        """The combined output: the highest active priority sets the LED; the highest priority
        whose audio is not paused sets the buzzer."""
        now = self._now(now)
        alarms = self._alarms()
        paused_mon = self._pause is not None
        reminder = self._reminder if self._reminder is not None and now < self._reminder[0] else None
        if not alarms:
            if reminder is not None:
                return Signal("none", "normal", "reminder", False, reminder[1])
            return Signal("none", "paused" if paused_mon else "normal", None, False, "", paused_mon)
        top = alarms[0]
        if top.technical or top.priority != "low":
            visual = "technical" if top.technical else top.priority
        else:   # low, non-technical (no_patient): a technical fault, if any, shows instead
            visual = "technical" if any(a.technical for a in alarms) else "low"
        audible = [a for a in alarms if not a.acknowledged]
        audio, key = None, ""
        if audible:
            best = max(PRIORITY_RANK[a.priority] for a in audible)
            first = max((a for a in audible if PRIORITY_RANK[a.priority] == best), key=lambda a: a.generation)
            audio, key = first.priority, f"{first.condition}:{first.generation}"
        paused = any(a.acknowledged for a in alarms)
        if paused_mon and not any(a.technical for a in alarms) and audio is None:
            visual = "paused"   # care in progress: the acknowledged distress alarm waits
        if audio is None and reminder is not None:
            audio, key = "reminder", reminder[1]
        return Signal(top.priority, visual, audio, paused, key, paused_mon)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Everything the status page shows about alarms (JSON-ready); changes nothing."""
        now = self._now(now)
        alarms = self._alarms()
        sig = self.signal(now)
        top = alarms[0].to_dict(now) if alarms else None
        return {
            "active": bool(alarms),
            "priority": sig.priority,
            "condition": top["condition"] if top else None,
            "since": top["since"] if top else None,
            "acknowledged": top["acknowledged"] if top else False,
            "acknowledged_by": top["acknowledged_by"] if top else None,
            "silenced_until": top["silenced_until"] if top else None,
            "silenced_for_s": top["silenced_for_s"] if top else 0.0,
            "audible": sig.audio is not None,
            "technical": [a.to_dict(now) for a in alarms if a.technical],
            "alarms": [a.to_dict(now) for a in alarms],
            "distress": None if self._score is None else round(self._score, 4),
            "distress_present": self._present,
            "vocal_distress_present": self._vocal_present,
            "pending": self._pending,
            "raised_last_hour": sum(1 for t in self._raises if now - t < HOUR_S),
            "pause": self._pause_dict(now),
            "signal": asdict(sig),
        }

    def _pause_dict(self, now: float) -> dict[str, Any] | None:
        p = self._pause
        if p is None:
            return None
        return {"by": p["by"], "since": p["since"], "minutes": p["minutes"], "until": p["until_time"],
                "remaining_s": round(max(0.0, p["until"] - now), 1)}

    @property
    def active(self) -> list[ActiveAlarm]:
        """Active alarms, highest priority first."""
        return self._alarms()

    # ------------------------------------------------------------------------------ internals

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _time(self) -> str:
        return utc_iso(self.wall_clock())

    def _alarms(self) -> list[ActiveAlarm]:
        alarms = [a for a in (self._distress, self._vocal) if a] + list(self._low.values())
        # highest priority first; among lows, technical faults before no_patient, then newest
        return sorted(alarms, key=lambda a: (-PRIORITY_RANK[a.priority], not a.technical, -a.since))

    def _prune(self, now: float) -> None:
        while self._raises and now - self._raises[0] >= HOUR_S:
            self._raises.popleft()

    def _event(self, kind: str, alarm: ActiveAlarm, by: str | None = None,
               detail: dict[str, Any] | None = None) -> AlarmEvent:
        distress = round(self._score, 4) if alarm.condition == DISTRESS and self._score is not None else None
        return AlarmEvent(kind=kind, condition=alarm.condition, priority=alarm.priority, by=by, time=self._time(),
                          distress=distress, detail=detail or {})

    def _new_alarm(self, condition: str, priority: str, kind: str, now: float,
                   detail: dict[str, Any]) -> tuple[ActiveAlarm, AlarmEvent]:
        self._generation += 1
        alarm = ActiveAlarm(condition, priority, since=now, since_time="", unacked_since=now,
                            generation=self._generation, detail=dict(detail))
        event = self._event(kind, alarm, detail=dict(detail))
        alarm.since_time = event.time
        return alarm, event

    def _evaluate(self, now: float) -> list[AlarmEvent]:
        ended = (self._end_pause(now, None, "pause_ended")
                 if self._pause is not None and now >= self._pause["until"] else [])
        return ended + (self._eval_distress(now) + self._eval_vocal(now) + self._eval_no_patient(now)
                + self._eval_timers(now))

    def _eval_distress(self, now: float) -> list[AlarmEvent]:
        c = self.config
        events: list[AlarmEvent] = []
        fresh = self._score_t is not None and now - self._score_t <= c.stall_s
        if fresh:   # a stale score neither raises nor clears: "stalled" covers that case
            mean = self.persistent_mean(now)
            persistent = mean is not None and mean >= c.persist_threshold
            if not self._present and self._above_since is not None and now - self._above_since >= c.t_on_s:
                self._present, self._present_reason = True, "distress_sustained"
            elif not self._present and persistent:
                self._present, self._present_reason = True, "distress_persistent"
            elif (self._present and not persistent and self._below_since is not None
                  and now - self._below_since >= c.t_off_s):
                self._present = False
        alarm = self._distress
        if self._present:
            if alarm is None:
                events += self._try_raise(now)
            else:
                alarm.present = True
        else:
            self._pending, self._suppressed_reported = None, False
            if alarm is not None and alarm.present:
                alarm.present = False
                if not c.latching or alarm.acknowledged:
                    events.append(self._clear_distress("condition_cleared", now, DISTRESS))
        alarm = self._distress
        if (alarm is not None and alarm.priority == "medium" and fresh and self._score is not None
                and self._score >= c.high_threshold):
            events.append(self._escalate(alarm, "high_threshold"))
        return events

    def _fatigue(self, condition: str, now: float) -> tuple[str | None, list[AlarmEvent]]:
        """Why a new distress-type alarm must wait (re-alarm spacing, hourly cap), with the
        one-off ``suppressed`` event; (None, []) when it may be raised now."""
        c = self.config
        self._prune(now)
        if self._last_raise is not None and now - self._last_raise < c.min_realarm_interval_s:
            return "min_realarm_interval", []
        if len(self._raises) >= c.max_alarms_per_hour:
            if self._suppressed_reported:
                return "hourly_cap", []
            self._suppressed_reported = True
            probe = ActiveAlarm(condition, "medium", now, "", now, 0)
            return "hourly_cap", [self._event("suppressed", probe, detail={
                "reason": "hourly_cap", "max_alarms_per_hour": c.max_alarms_per_hour,
                "retry_in_s": round(HOUR_S - (now - self._raises[0]), 1)})]
        return None, []

    def _raised(self, now: float) -> None:
        self._raises.append(now)
        self._last_raise = now
        self._suppressed_reported = False

    def _try_raise(self, now: float) -> list[AlarmEvent]:
        c = self.config
        if self._pause is not None:
            self._pending = "paused"
            return []
        wait, events = self._fatigue(DISTRESS, now)
        if wait:
            self._pending = wait
            return events
        score = self._score if self._score is not None else 0.0
        priority = "high" if score >= c.high_threshold else "medium"
        if self._present_reason == "distress_persistent":
            mean = self.persistent_mean(now)
            detail: dict[str, Any] = {"reason": "distress_persistent", "persist_window_s": c.persist_window_s,
                                      "mean": None if mean is None else round(mean, 3)}
        else:
            detail = {"reason": "distress_sustained", "t_on_s": c.t_on_s,
                      "above_s": round(now - self._above_since, 1) if self._above_since is not None else None}
        if self._pending:
            detail["delayed_by"] = self._pending
        self._distress, event = self._new_alarm(DISTRESS, priority, "raised", now, detail)
        self._pending = None
        self._raised(now)
        return [event]

    def _eval_vocal(self, now: float) -> list[AlarmEvent]:
        """Raise, hold or clear ``vocal_distress`` from the latest state's sound condition."""
        c = self.config
        fresh = self._last_update is not None and now - self._last_update <= c.stall_s
        if not fresh:   # a stale state neither raises nor clears: "stalled" covers that case
            return []
        alarm = self._vocal
        if self._vocal_present:
            if alarm is not None:
                alarm.present = True
                return []
            if self._pause is not None:
                self._vocal_pending = "paused"
                return []
            wait, events = self._fatigue(VOCAL_DISTRESS, now)
            if wait:
                self._vocal_pending = wait
                return events
            detail = {"reason": "distress_sounds", **self._vocal_detail}
            if self._vocal_pending:
                detail["delayed_by"] = self._vocal_pending
            self._vocal, event = self._new_alarm(VOCAL_DISTRESS, "medium", "raised", now, detail)
            self._vocal_pending = None
            self._raised(now)
            return [event]
        self._vocal_pending = None
        if alarm is not None and alarm.present:
            alarm.present = False
            if not c.latching or alarm.acknowledged:
                return [self._clear_distress("condition_cleared", now, VOCAL_DISTRESS)]
        return []

    def _clear_distress(self, reason: str, now: float, condition: str) -> AlarmEvent:
        alarm = self._distress if condition == DISTRESS else self._vocal
        assert alarm is not None
        if condition == DISTRESS:
            self._distress = None
        else:
            self._vocal = None
        return self._event("cleared", alarm, by=alarm.acknowledged_by,
                           detail={"reason": reason, "duration_s": round(now - alarm.since, 1)})

    def _escalate(self, alarm: ActiveAlarm, reason: str) -> AlarmEvent:
        before = alarm.priority
        alarm.priority = "high"
        if not alarm.acknowledged:   # an acknowledge keeps its pause; the LED shows the escalation
            self._generation += 1
            alarm.generation = self._generation
        return self._event("escalated", alarm, detail={"reason": reason, "from": before})

    def _eval_no_patient(self, now: float) -> list[AlarmEvent]:
        minutes = self.config.no_patient_minutes
        if minutes <= 0 or not self._states_seen:
            return []
        absent_s = now - self._face_seen
        existing = self._low.get(NO_PATIENT)
        if existing is not None and absent_s < minutes * 60.0:
            del self._low[NO_PATIENT]
            return [self._event("cleared", existing, by=existing.acknowledged_by,
                                detail={"reason": "patient_seen", "duration_s": round(now - existing.since, 1)})]
        blind = any(k in self._low for k in ("camera_lost", "stalled"))   # unknown, not absent
        if existing is None and absent_s >= minutes * 60.0 and not blind:
            alarm, event = self._new_alarm(NO_PATIENT, "low", "raised", now,
                                           {"reason": "no_face", "absent_s": round(absent_s, 1)})
            self._low[NO_PATIENT] = alarm
            return [event]
        return []

    def _eval_timers(self, now: float) -> list[AlarmEvent]:
        c = self.config
        events: list[AlarmEvent] = []
        for alarm in self._alarms():
            if (alarm.condition in DISTRESS_CONDITIONS and alarm.priority == "medium" and not alarm.acknowledged
                    and now - alarm.unacked_since >= c.t_escalate_s):
                events.append(self._escalate(alarm, "unacknowledged"))
            if (alarm.acknowledged and alarm.present and alarm.silenced_until is not None
                    and now >= alarm.silenced_until):
                alarm.acknowledged, alarm.silenced_until, alarm.silenced_until_time = False, None, None
                alarm.unacked_since = now
                self._generation += 1
                alarm.generation = self._generation
                events.append(self._event("resounded", alarm, detail={"reason": "silence_ended"}))
        return events
