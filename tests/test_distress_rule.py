"""The distress rule's design tool: score traces recorded from the real service replay to the same
alarms, and ``scripts/tune_distress_rule.py`` ranks rules by the streams they get wrong."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
from script_loader import load_script

from edge import config as config_mod

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEECH = REPO / "edge" / "demo_media" / "demo_speech.wav"


def test_a_recorded_trace_replays_to_the_alarm_the_service_raised(tmp_path: Path) -> None:
    scenario = load_script("scenario")
    tune = load_script("tune_distress_rule")
    base = config_mod.load(None)
    row = scenario.run_stream(base, tmp_path, "demo", "demo", True, audio=DEMO_SPEECH, trace=True)
    trace = row["trace"]
    assert len(trace) >= 20
    assert all(a[0] <= b[0] for a, b in zip(trace, trace[1:], strict=False))
    assert all(0.0 <= s <= 1.0 for _, s in trace)
    assert [e["condition"] for e in row["raised"]] == ["distress"]   # the demo's distressed voice
    assert tune.first_distress(trace, base.alarm) == pytest.approx(row["first_s"], abs=0.5)
    never = dataclasses.replace(base.alarm, on_threshold=1.0, high_threshold=1.0, persist_window_s=0.0)
    assert tune.first_distress(trace, never) is None


def stream(name: str, expect: bool, pattern: list[tuple[float, float]], seconds: float = 60.0) -> dict:
    """A recorded stream whose score repeats ``pattern`` ([(score, seconds)]) at 5 states a second."""
    trace, t = [], 0.0
    while t < seconds:
        for score, length in pattern:
            for _ in range(int(length * 5)):
                t += 0.2
                trace.append([round(t, 3), score])
    return {"stream": name, "expect_alarm": expect, "trace": trace, "raised": []}


def test_tune_finds_the_window_that_catches_dipping_distress_and_spares_spikes(tmp_path: Path, capsys) -> None:
    tune = load_script("tune_distress_rule")
    streams = [
        stream("sad", True, [(0.6, 3.0), (0.3, 2.0)]),        # never 6 s over 0.55; mean 0.48
        stream("neutral", False, [(0.25, 5.0)]),
        stream("spiky", False, [(0.6, 3.0), (0.2, 7.0)]),      # mean 0.32
        stream("laugh", False, [(0.1, 5.0)]),
    ]
    streams[3]["raised"] = [{"t": 12.0, "condition": "vocal_distress"}]   # the sound rule's own alarm stays
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"streams": streams}))
    off = tmp_path / "off.toml"
    off.write_text("[alarm]\npersist_window_s = 0\n")
    assert tune.main([str(path), "--windows", "0", "10", "--thresholds", "0.3:0.5:0.1", "--config", str(off)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["configured"]["persist_window_s"] == 0.0
    assert result["configured"]["late"] == {"sad": 1} and result["configured"]["false"] == {"laugh": 1}
    best = result["best"]
    assert (best["persist_window_s"], best["persist_threshold"]) == (10.0, 0.4)
    assert best["late"] == {} and best["false"] == {"laugh": 1}
    low = next(r for r in result["rules"] if r["persist_window_s"] == 10.0 and r["persist_threshold"] == 0.3)
    assert low["false"] == {"spiky": 1, "laugh": 1}


def test_tune_refuses_a_file_without_traces(tmp_path: Path) -> None:
    tune = load_script("tune_distress_rule")
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"streams": [{"stream": "sad", "expect_alarm": True}]}))
    with pytest.raises(SystemExit, match="rerun with --trace"):
        tune.main([str(path)])
    path.write_text("not json")
    with pytest.raises(SystemExit, match="bench_faces.py --trace"):
        tune.main([str(path)])


def test_value_grid_reads_start_stop_step_and_names_the_form_when_wrong() -> None:
    cli = load_script("cli")
    assert cli.value_grid("0.5:0.6:0.05") == [0.5, 0.55, 0.6]
    assert cli.value_grid("8") == [8.0]
    with pytest.raises(argparse.ArgumentTypeError, match="start:stop:step"):
        cli.value_grid("0.5-0.6")
    with pytest.raises(argparse.ArgumentTypeError, match="start <= stop"):
        cli.value_grid("0.6:0.5:0.1")
