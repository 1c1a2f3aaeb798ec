"""The state timeline's sampling rule, shared by the event store and the status page's memory:
a row (time, label, distress, alarm active) at most once per ``TIMELINE_INTERVAL_S``, and always
when the alarm turns on or off."""

from __future__ import annotations

from edge.events import EmotionState

TIMELINE_INTERVAL_S = 1.0      # one timeline row per second at most

Row = tuple[float, str, float, int]


class TimelineSampler:
    """Decides which states become timeline rows (pure: the caller passes the time)."""

    def __init__(self, interval_s: float = TIMELINE_INTERVAL_S):
        self.interval_s = interval_s
        self._last_ts = float("-inf")
        self._last_alarm: int | None = None

    def row(self, state: EmotionState, alarm_active: bool, ts: float) -> Row | None:
        """The row for ``state`` at epoch ``ts``, or None when it falls within the interval of the
        last row with the same alarm status."""
        alarm = 1 if alarm_active else 0
        if ts - self._last_ts < self.interval_s and alarm == self._last_alarm:
            return None
        self._last_ts, self._last_alarm = ts, alarm
        return ts, state.label, round(float(state.distress), 4), alarm
