"""The alarm-quality bench (scripts/bench_alarm.py) meets the issue's bar with the default config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_alarm_meets_the_bar():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_alarm.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["time_to_alarm_s"] is not None and result["time_to_alarm_s"] <= 10
    assert result["false_alarms_per_hour"] == 0
    assert result["alarms_per_episode"] == 1
    assert result["false_alarm_hours"] >= 10 and result["episodes"] >= 10
