"""Every alarm signal pattern, as data (IEC 60601-1-8 inspired).

A :class:`Pattern` is a list of ``(level, seconds)`` steps played from the start of each cycle;
after the steps the output is off until ``period_s`` has passed since the cycle began, then the
cycle repeats (``period_s`` None: play once and stay off). Levels are 0..1: on/off for a buzzer,
brightness for a PWM LED.

Audible (buzzer):
  high    10 pulses as 3 + 2, 3 + 2, a burst every 10 s (IEC: 10 pulses, 2.5..15 s apart)
  medium  3 pulses, a burst every 25 s (IEC: 3 pulses, 2.5..30 s apart)
  low     1 pulse, once per new alarm (IEC: 1 or 2 pulses, optional)
  reminder  2 short pulses, once: a pause of monitoring has ended by itself
Visual (status LED):
  high      2 Hz flash, 50 % duty (IEC: 1.4..2.8 Hz, 20..60 % duty)
  medium    0.6 Hz flash, 50 % duty (IEC: 0.4..0.8 Hz)
  low       steady on (IEC: constant)
  technical double blink every 2 s: a broken box never looks like a calm patient
  paused    dim 1 s glow every 3 s: monitoring paused for care (distress alarms held)
  normal    dim blip every 5 s: the service is alive and all is calm
"""

from __future__ import annotations

from dataclasses import dataclass

Step = tuple[float, float]   # (level 0..1, seconds)


@dataclass(frozen=True)
class Pattern:
    name: str
    steps: tuple[Step, ...]
    period_s: float | None     # start-to-start time of the cycles; None = play once

    @property
    def burst_s(self) -> float:
        """Length of the steps of one cycle."""
        return sum(d for _, d in self.steps)

    def __post_init__(self) -> None:
        if any(d < 0 or not 0.0 <= v <= 1.0 for v, d in self.steps):
            raise ValueError(f"pattern {self.name}: levels must be 0..1 and durations >= 0")
        if self.period_s is not None and self.period_s < self.burst_s:
            raise ValueError(f"pattern {self.name}: period_s shorter than its steps")

    def edges(self, cycles: int = 1) -> list[tuple[float, float]]:
        """(time, level) of every level change over some cycles, starting from off at t = 0;
        what a pin's history should show (used by tests and test-alarm)."""
        out: list[tuple[float, float]] = []
        level, t0 = 0.0, 0.0
        for _ in range(cycles):
            t = t0
            for value, dur in self.steps:
                if value != level:
                    out.append((round(t, 6), value))
                    level = value
                t += dur
            if level != 0.0 and (self.period_s is None or self.period_s > self.burst_s):
                out.append((round(t, 6), 0.0))
                level = 0.0
            if self.period_s is None:
                break
            t0 += self.period_s
        return out


def _pulses(on_s: float, gap_s: float, groups: list[int], group_gaps: list[float]) -> tuple[Step, ...]:
    """Pulse trains: groups of pulses `on_s` long, `gap_s` apart; `group_gaps` between groups."""
    steps: list[Step] = []
    for i, count in enumerate(groups):
        for j in range(count):
            steps.append((1.0, on_s))
            if j < count - 1:
                steps.append((0.0, gap_s))
        if i < len(groups) - 1:
            steps.append((0.0, group_gaps[i]))
    return tuple(steps)


# IEC 60601-1-8: high pulse 75..200 ms, gap 50..125 ms; 3rd-4th gap = 2 pulses + gap; 5th-6th 0.35..1.3 s
HIGH_PULSE_S, HIGH_GAP_S = 0.15, 0.10
MEDIUM_PULSE_S, MEDIUM_GAP_S = 0.20, 0.20

AUDIO: dict[str, Pattern] = {
    "high": Pattern("high", _pulses(HIGH_PULSE_S, HIGH_GAP_S, [3, 2, 3, 2],
                                    [2 * HIGH_PULSE_S + HIGH_GAP_S, 1.0, 2 * HIGH_PULSE_S + HIGH_GAP_S]), 10.0),
    "medium": Pattern("medium", _pulses(MEDIUM_PULSE_S, MEDIUM_GAP_S, [3], []), 25.0),
    "low": Pattern("low", ((1.0, 0.2),), None),
    "reminder": Pattern("reminder", ((1.0, 0.08), (0.0, 0.12), (1.0, 0.08)), None),
}

VISUAL: dict[str, Pattern] = {
    "high": Pattern("high", ((1.0, 0.25),), 0.5),
    "medium": Pattern("medium", ((1.0, 0.8333),), 1.6667),
    "low": Pattern("low", ((1.0, 1.0),), 1.0),
    "technical": Pattern("technical", ((1.0, 0.15), (0.0, 0.15), (1.0, 0.15)), 2.0),
    "paused": Pattern("paused", ((0.3, 1.0),), 3.0),
    "normal": Pattern("normal", ((0.2, 0.2),), 5.0),
}

# What `medtrack test-alarm --priority X` plays: (audio pattern or None, visual pattern).
TEST_SEQUENCE: dict[str, tuple[str | None, str]] = {
    "high": ("high", "high"),
    "medium": ("medium", "medium"),
    "low": ("low", "low"),
    "technical": ("low", "technical"),
}
