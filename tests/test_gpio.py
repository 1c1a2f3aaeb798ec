"""GPIO output on gpiozero's MockFactory with PWM pins, on virtual time: pin state histories must
show the exact pattern timings; the button acknowledges; the buzzer ends off on stop and on errors."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from gpiozero import PWMLED, Buzzer

from edge.alarm import Signal
from edge.config import Config, GpioConfig
from edge.events import AlarmEvent
from edge.hub import Hub
from edge.outputs import gpio
from edge.outputs.gpio import PatternPlayer, PinOutput, SignalOutputs, make_pin_factory, mock_factory
from edge.outputs.patterns import AUDIO, VISUAL, Pattern

REPO = Path(__file__).resolve().parents[1]
BUZZER, LED, BUTTON = 17, 27, 22


class VirtualTime:
    """A clock and an async sleep on virtual time: advance() wakes sleepers in due order."""

    def __init__(self) -> None:
        self.t = 100.0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.t + max(0.0, delay), self._seq, fut))
        self._seq += 1
        await fut

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while True:
            await self.settle()
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap or self._heap[0][0] > end:
                break
            when, _, fut = heapq.heappop(self._heap)
            self.t = when
            fut.set_result(None)
        self.t = end
        await self.settle()


@pytest.fixture
def vt(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    v = VirtualTime()
    monkeypatch.setattr("gpiozero.pins.mock.monotonic", v)   # pin histories in virtual time
    return v


@pytest.fixture
def factory(vt: VirtualTime) -> Any:
    f = mock_factory()
    yield f
    f.reset()


def history(pin: Any, since: float, start: float) -> list[tuple[float, float]]:
    """Absolute (time - since, level) of each change after the pin's creation at `start`."""
    out, t = [], start
    for change in pin.states[1:]:
        t += change.timestamp
        out.append((round(t - since, 6), float(change.state)))
    return out


def assert_edges(got: list[tuple[float, float]], expected: list[tuple[float, float]]) -> None:
    assert len(got) == len(expected), (got, expected)
    for (tg, vg), (te, ve) in zip(got, expected, strict=True):
        assert tg == pytest.approx(te, abs=1e-6) and vg == pytest.approx(ve), (got, expected)


# ------------------------------------------------------------------------------ patterns as data

def test_audible_patterns_follow_iec_60601_1_8():
    high = AUDIO["high"]
    on = [d for v, d in high.steps if v]
    assert len(on) == 10 and high.period_s == 10.0
    gaps = [d for v, d in high.steps if not v]
    assert gaps == pytest.approx([0.1, 0.1, 0.4, 0.1, 1.0, 0.1, 0.1, 0.4, 0.1])   # 3 + 2, 3 + 2
    medium = AUDIO["medium"]
    assert sum(1 for v, _ in medium.steps if v) == 3 and medium.period_s == 25.0
    low = AUDIO["low"]
    assert sum(1 for v, _ in low.steps if v) == 1 and low.period_s is None


def test_visual_pattern_rates():
    assert 1.0 / VISUAL["high"].period_s == pytest.approx(2.0)
    assert 1.0 / VISUAL["medium"].period_s == pytest.approx(0.6, abs=0.01)
    assert VISUAL["low"].edges(3) == [(0.0, 1.0)]                       # steady
    names = {n: tuple(p.edges(2)) for n, p in VISUAL.items()}
    assert len(set(names.values())) == len(names)                       # all distinct


def test_pattern_validation():
    with pytest.raises(ValueError):
        Pattern("bad", ((1.0, 2.0),), 1.0)
    with pytest.raises(ValueError):
        Pattern("bad", ((1.5, 0.1),), None)


# ------------------------------------------------------------------------------ pattern player

@pytest.mark.parametrize("name", list(AUDIO))
async def test_buzzer_pin_history_matches_each_audible_pattern(vt, factory, name):
    start = vt.t
    buzzer = PinOutput(Buzzer(BUZZER, pin_factory=factory), "buzzer", False)
    player = PatternPlayer(buzzer, vt, vt.sleep)
    pattern = AUDIO[name]
    task = asyncio.create_task(player.play(pattern, cycles=2))
    await vt.advance(60.0)
    assert task.done()
    assert_edges(history(factory.pin(BUZZER), start, start), pattern.edges(2))


@pytest.mark.parametrize("name", list(VISUAL))
async def test_led_pin_history_matches_each_visual_pattern(vt, factory, name):
    start = vt.t
    led = PinOutput(PWMLED(LED, pin_factory=factory), "led", True)
    pattern = VISUAL[name]
    task = asyncio.create_task(PatternPlayer(led, vt, vt.sleep).play(pattern))   # until cancelled
    await vt.advance(3 * pattern.period_s - 0.01)
    expected = pattern.edges(3)
    expected = [e for e in expected if e[0] < 3 * pattern.period_s - 0.01]
    assert_edges(history(factory.pin(LED), start, start), expected)
    task.cancel()
    await vt.settle()
    assert factory.pin(LED).state == 0.0


async def test_high_pattern_timings_from_the_pin_history(vt, factory):
    """The buzzer pin shows 10 pulses of 150 ms, bursts starting every 10 s."""
    start = vt.t
    player = PatternPlayer(PinOutput(Buzzer(BUZZER, pin_factory=factory), "buzzer", False), vt, vt.sleep)
    task = asyncio.create_task(player.play(AUDIO["high"]))
    await vt.advance(25.0)
    task.cancel()
    await vt.settle()
    edges = history(factory.pin(BUZZER), start, start)
    rises = [t for t, v in edges if v == 1.0]
    assert len(rises) == 30
    assert [rises[0], rises[10], rises[20]] == pytest.approx([0.0, 10.0, 20.0])
    widths = [b[0] - a[0] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    assert widths == pytest.approx([0.15] * 30)
    assert factory.pin(BUZZER).state == 0.0


async def test_buzzer_off_when_the_player_fails_mid_pulse(vt, factory):
    buzzer = Buzzer(BUZZER, pin_factory=factory)

    async def broken_sleep(_: float) -> None:
        assert buzzer.value == 1     # the pulse is on when the failure hits
        raise RuntimeError("boom")

    player = PatternPlayer(PinOutput(buzzer, "buzzer", False), vt, broken_sleep)
    with pytest.raises(RuntimeError, match="boom"):
        await player.play(AUDIO["high"])
    assert factory.pin(BUZZER).state == 0.0


async def test_signal_outputs_restart_audio_only_when_the_key_changes(vt, factory):
    start = vt.t
    out = SignalOutputs(PinOutput(Buzzer(BUZZER, pin_factory=factory), "buzzer", False),
                        PinOutput(PWMLED(LED, pin_factory=factory), "led", True), vt, vt.sleep)
    out.follow(make_signal(visual="technical", audio="low", key="camera_lost:1"))
    await vt.advance(1.0)
    out.follow(make_signal(visual="technical", audio="low", key="camera_lost:1"))   # same: no new pulse
    await vt.advance(1.0)
    out.follow(make_signal(visual="technical", audio="low", key="camera_lost:2"))   # resound: one pulse
    await vt.advance(1.0)
    assert_edges(history(factory.pin(BUZZER), start, start), [(0.0, 1.0), (0.2, 0.0), (2.0, 1.0), (2.2, 0.0)])
    await out.aclose()
    assert factory.pin(LED).state == 0.0


# ------------------------------------------------------------------------------ serve()

def make_hub(**gpio_kw: Any) -> Hub:
    config = dataclasses.replace(Config(), gpio=dataclasses.replace(GpioConfig(pin_factory="mock"), **gpio_kw))
    return Hub(config)


def make_signal(visual: str = "normal", audio: str | None = None, key: str = "") -> Signal:
    return Signal(priority="none", visual=visual, audio=audio, paused=False, key=key)


class Driver:
    """Stands in for the alarm service: publishes signals, records acknowledgements."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.acks: list[tuple[str, bool]] = []
        hub.set_ack_handler(self._ack)

    def _ack(self, by: str, long: bool) -> AlarmEvent | None:
        self.acks.append((by, long))
        return AlarmEvent(kind="acknowledged", condition="distress", priority="medium", by=by)

    def set(self, **sig: Any) -> None:
        self.hub.signals.publish(make_signal(**sig))


async def test_serve_plays_follows_and_ends_off(vt, factory):
    hub = make_hub()
    drv = Driver(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(gpio.serve(hub, stop, factory=factory, clock=vt, sleep=vt.sleep))
    await vt.advance(6.0)
    start = vt.t
    assert hub.health["gpio"].status == "ok"
    led_pin, buzzer_pin = factory.pin(LED), factory.pin(BUZZER)
    assert_edges(history(led_pin, 100.0, 100.0), VISUAL["normal"].edges(2))   # calm heartbeat

    drv.set(visual="medium", audio="medium", key="distress:1")
    await vt.advance(26.5)
    assert_edges(history(buzzer_pin, start, 100.0), AUDIO["medium"].edges(2))
    led = [e for e in history(led_pin, start, 100.0) if e[0] >= 0]
    assert_edges(led[:10], VISUAL["medium"].edges(6)[:10])          # 0.6 Hz flash from the change on

    drv.set(visual="medium", audio="medium", key="distress:1")      # unchanged
    await vt.advance(0.1)                                           # mid-burst at 25.1 .. 26.0 ... pulse on
    drv.set(visual="medium", audio=None, key="")                    # acknowledged: buzzer off at once
    await vt.settle()
    assert buzzer_pin.state == 0.0
    n_buzz = len(buzzer_pin.states)
    await vt.advance(30.0)
    assert len(buzzer_pin.states) == n_buzz                         # stays silent, LED still flashing
    assert sum(1 for s in led_pin.states[-20:] if s.state == 1.0) >= 5

    drv.set(visual="high", audio="high", key="distress:2")
    await vt.advance(0.05)
    assert buzzer_pin.state == 1.0
    stop.set()
    await vt.settle()
    await asyncio.wait_for(task, 5)
    assert buzzer_pin.state == 0.0 and led_pin.state == 0.0
    assert hub.signals.subscribers == 0


async def test_button_press_and_long_press_acknowledge(vt, factory):
    hub = make_hub(long_press_s=2.0)
    drv = Driver(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(gpio.serve(hub, stop, factory=factory, clock=vt, sleep=vt.sleep))
    await vt.settle()
    button = factory.pin(BUTTON)
    assert button.state is True or button.state == 1                   # pulled up, not pressed
    button.drive_low()
    await vt.advance(0.3)
    button.drive_high()
    await vt.settle()
    assert drv.acks == [("button", False)]
    button.drive_low()
    await vt.advance(2.5)
    button.drive_high()
    await vt.settle()
    assert drv.acks == [("button", False), ("button", True)]
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_buzzer_off_when_serve_is_cancelled_mid_pulse(vt, factory):
    hub = make_hub()
    drv = Driver(hub)
    drv.set(visual="high", audio="high", key="distress:1")
    task = asyncio.create_task(gpio.serve(hub, asyncio.Event(), factory=factory, clock=vt, sleep=vt.sleep))
    await vt.advance(0.05)
    assert factory.pin(BUZZER).state == 1.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert factory.pin(BUZZER).state == 0.0 and factory.pin(LED).state == 0.0


async def test_buzzer_off_when_serve_crashes(vt, factory):
    hub = make_hub()
    drv = Driver(hub)
    drv.set(visual="high", audio="high", key="distress:1")
    broken = False

    async def sleep(delay: float) -> None:
        if broken:
            raise RuntimeError("sleep broke")
        await vt.sleep(delay)

    task = asyncio.create_task(gpio.serve(hub, asyncio.Event(), factory=factory, clock=vt, sleep=sleep))
    await vt.advance(0.05)
    assert factory.pin(BUZZER).state == 1.0
    broken = True                            # the next pattern step fails: serve ends, buzzer off
    await vt.advance(1.0)
    with pytest.raises(RuntimeError, match="gpio pattern task .* failed"):
        await asyncio.wait_for(task, 5)
    assert factory.pin(BUZZER).state == 0.0


async def test_atexit_handler_switches_the_buzzer_off(vt, factory, monkeypatch):
    registered: list[Any] = []
    monkeypatch.setattr(gpio.atexit, "register", registered.append)
    monkeypatch.setattr(gpio.atexit, "unregister", lambda f: None)
    hub = make_hub()
    drv = Driver(hub)
    drv.set(visual="high", audio="high", key="distress:1")
    stop = asyncio.Event()
    task = asyncio.create_task(gpio.serve(hub, stop, factory=factory, clock=vt, sleep=vt.sleep))
    await vt.advance(0.05)
    assert factory.pin(BUZZER).state == 1.0 and len(registered) == 1
    registered[0]()                          # what the interpreter runs at exit
    assert factory.pin(BUZZER).state == 0.0
    stop.set()
    await asyncio.wait_for(task, 5)


def test_sigterm_turns_the_buzzer_off_before_the_process_dies():
    script = textwrap.dedent("""
        import asyncio, logging, sys
        from edge.alarm import Signal
        from edge.config import Config, GpioConfig
        from edge.hub import Hub
        from edge.outputs import gpio
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
        hub = Hub(Config(gpio=GpioConfig(pin_factory="mock")))
        hub.signals.publish(Signal(priority="high", visual="high", audio="high", paused=False, key="d:1"))
        asyncio.run(gpio.serve(hub, asyncio.Event()))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:                 # wait until the buzzer is sounding
        lines.append(line.rstrip())
        if line.startswith("gpio buzzer pin") and line.rstrip().endswith("-> 1.00"):
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    lines += out.splitlines()
    assert proc.returncode == -signal.SIGTERM, lines
    assert "gpio: SIGTERM; buzzer off" in lines, lines
    buzzer_lines = [ln for ln in lines if ln.startswith("gpio buzzer pin")]
    assert buzzer_lines and buzzer_lines[-1].endswith("-> 0.00"), lines


# ------------------------------------------------------------------------------ factory, test-alarm

def test_pin_factories(caplog):
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    f, is_mock = make_pin_factory("mock")
    assert isinstance(f, MockFactory) and f.pin_class is MockPWMPin and is_mock
    if not Path("/proc/device-tree/model").exists():     # off a Pi: auto falls back, with a warning
        f, is_mock = make_pin_factory("auto")
        assert isinstance(f, MockFactory) and is_mock
        assert "using mock pins" in caplog.text


def test_auto_reports_mock_pins_chosen_by_the_environment(monkeypatch):
    # GPIOZERO_PIN_FACTORY=mock (as the demo sets it) must not pass for real hardware
    from gpiozero.pins.mock import MockFactory

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    f, is_mock = make_pin_factory("auto")
    assert isinstance(f, MockFactory) and is_mock


async def test_test_alarm_plays_each_pattern_once(vt, factory):
    lines: list[str] = []
    start = vt.t
    task = asyncio.create_task(gpio.run_test_alarm(GpioConfig(pin_factory="mock"), ["high", "technical"],
                                                   factory=factory, clock=vt, sleep=vt.sleep, out=lines.append))
    await vt.advance(60.0)
    assert task.result() == 0
    high = AUDIO["high"].edges(1)
    buzz = history(factory.pin(BUZZER), start, start)
    assert_edges(buzz[:len(high)], high)
    after = buzz[len(high):]                                # technical: one low pulse, 1 s after
    assert len(after) == 2 and after[1][0] - after[0][0] == pytest.approx(0.2)
    assert factory.pin(BUZZER).state == 0.0 and factory.pin(LED).state == 0.0
    assert lines[0].startswith("test-alarm: high") and lines[-1] == "test-alarm: done; buzzer off"


def test_cli_test_alarm_dispatch(monkeypatch, tmp_path):
    seen: dict[str, Any] = {}

    async def fake(cfg: GpioConfig, priorities: list[str], **_: Any) -> int:
        seen.update(cfg=cfg, priorities=priorities)
        return 0

    monkeypatch.setattr(gpio, "run_test_alarm", fake)
    conf = tmp_path / "c.toml"
    conf.write_text('[gpio]\npin_factory = "mock"\nbuzzer_pin = 5\n')
    assert gpio.cli_test_alarm(argparse.Namespace(config=str(conf), priority="medium")) == 0
    assert seen["priorities"] == ["medium"] and seen["cfg"].buzzer_pin == 5
    assert gpio.cli_test_alarm(argparse.Namespace(config=str(conf), priority="all")) == 0
    assert seen["priorities"] == ["high", "medium", "low", "technical"]


async def test_paused_monitoring_led_and_the_reminder_tone(vt, factory):
    hub = make_hub()
    drv = Driver(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(gpio.serve(hub, stop, factory=factory, clock=vt, sleep=vt.sleep))
    await vt.advance(1.0)
    start = vt.t
    drv.set(visual="paused", audio=None, key="")
    await vt.advance(7.0)
    led = [e for e in history(factory.pin(LED), start, 100.0) if e[0] >= 0]
    assert_edges(led[:6], VISUAL["paused"].edges(3)[:6])              # dim glow every 3 s
    start = vt.t
    drv.set(visual="normal", audio="reminder", key="reminder:3")      # the pause ran out
    await vt.advance(10.0)
    assert_edges(history(factory.pin(BUZZER), start, 100.0), AUDIO["reminder"].edges(1))   # once, short
    stop.set()
    await asyncio.wait_for(task, 5)
