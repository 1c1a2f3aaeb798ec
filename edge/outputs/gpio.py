"""GPIO output: buzzer, status LED and acknowledge button through gpiozero.

Follows the alarm machine's :class:`~edge.alarm.Signal` (``hub.signals``, the latest wins) and plays
the patterns of :mod:`edge.outputs.patterns` as asyncio tasks with an injectable clock and sleep, so
the event loop never blocks and tests run on virtual time.
The button (:meth:`edge.alarm.AlarmMachine.press`): with an alarm sounding a press acknowledges it
(held >= ``long_press_s``: the longer silence); with none sounding a long press pauses monitoring
for ``[alarm] button_pause_minutes`` and a short press ends the pause. The buzzer is switched
off on stop, on a crash (finally + atexit) and on SIGTERM. Off a Pi, gpiozero's ``MockFactory``
with PWM pins drives the same devices; each pattern change is logged at INFO, every pin change at
DEBUG.

``medtrack test-alarm`` (:func:`cli_test_alarm`) plays each pattern once, like a smoke alarm's
test button.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from edge.alarm import Signal
from edge.config import GpioConfig
from edge.hub import Hub
from edge.outputs.patterns import AUDIO, TEST_SEQUENCE, VISUAL, Pattern

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]

_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "jetson": ("edge.outputs.jetson_pins", "JetsonFactory"),
}


class GpioError(RuntimeError):
    """GPIO cannot be used; the message names the cause and the fix (``device``, ``pin`` and
    ``cause``: the device that could not be opened, its pin and gpiozero's error)."""

    def __init__(self, message: str, device: str = "", pin: int | None = None, cause: BaseException | None = None):
        super().__init__(message)
        self.device, self.pin, self.cause = device, pin, cause


def mock_factory() -> Any:
    """gpiozero's own mock pins, with PWM (for the PWM LED)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


def make_pin_factory(name: str) -> tuple[Any, bool]:
    """The pin factory for [gpio] pin_factory, and whether it is mock pins. ``auto`` falls back to
    mock pins, with a warning, when no GPIO hardware is found."""
    if name == "mock":
        return mock_factory(), True
    if name == "auto":
        from gpiozero.devices import Device

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                factory = Device._default_pin_factory()
            # GPIOZERO_PIN_FACTORY=mock in the environment (the demo sets it) gives mock pins too
            from gpiozero.pins.mock import MockFactory

            return factory, isinstance(factory, MockFactory)
        except Exception as exc:  # noqa: BLE001 - any failure means: not on a Pi
            log.warning("gpio: no GPIO hardware found (%s); using mock pins, nothing will sound", exc)
            return mock_factory(), True
    module, cls = _FACTORIES[name]
    try:
        return getattr(importlib.import_module(module), cls)(), False
    except Exception as exc:  # noqa: BLE001
        raise GpioError(f"gpio.pin_factory = {name!r} cannot start ({exc}); install its library, "
                        "or use 'auto' (the board's) or 'mock'") from None


class PinOutput:
    """One output device (Buzzer, LED, PWMLED) with level changes logged at DEBUG."""

    def __init__(self, device: Any, name: str, pwm: bool):
        self.device, self.name, self.pwm = device, name, pwm
        self.level = 0.0

    def set(self, level: float) -> None:
        level = level if self.pwm else (1.0 if level > 0 else 0.0)
        if level == self.level:
            return
        self.level = level
        try:
            if self.pwm:
                self.device.value = level
            elif level:
                self.device.on()
            else:
                self.device.off()
        except Exception as exc:  # noqa: BLE001 - a closed device must not mask the real error
            log.debug("gpio %s: cannot set %.2f (%s)", self.name, level, exc)
            return
        log.debug("gpio %s pin %s -> %.2f", self.name, getattr(self.device, "pin", "?"), level)


class PatternPlayer:
    """Plays patterns on one output, timed from an injected clock and sleep (drift-free: each
    step waits until its absolute due time)."""

    def __init__(self, output: PinOutput, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        self.output, self.clock, self.sleep = output, clock, sleep

    async def _until(self, t: float) -> None:
        await self.sleep(max(0.0, t - self.clock()))

    async def play(self, pattern: Pattern, cycles: int | None = None) -> None:
        """Play ``cycles`` cycles (None: until cancelled; a once-only pattern plays once). The
        output is off when this returns, fails or is cancelled."""
        start = self.clock()
        done = 0
        try:
            while True:
                t = start
                for level, duration in pattern.steps:
                    self.output.set(level)
                    t += duration
                    await self._until(t)
                done += 1
                if pattern.period_s is None or (cycles is not None and done >= cycles):
                    return
                if pattern.period_s > pattern.burst_s:
                    self.output.set(0.0)
                start += pattern.period_s
                await self._until(start)
        finally:
            self.output.set(0.0)


class SignalOutputs:
    """The buzzer and the LED following an alarm signal; restarts a pattern only when it must."""

    def __init__(self, buzzer: PinOutput, led: PinOutput, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep):
        self.buzzer, self.led = buzzer, led
        self.buzzer_player = PatternPlayer(buzzer, clock, sleep)
        self.led_player = PatternPlayer(led, clock, sleep)
        self._audio_id: tuple[str | None, str] | None = None
        self._visual: str | None = None
        self._audio_task: asyncio.Task[None] | None = None
        self._visual_task: asyncio.Task[None] | None = None

    def follow(self, sig: Signal | None) -> None:
        """Apply an alarm signal; None = calm. Raises when a pattern task has failed."""
        visual = sig.visual if sig is not None and sig.visual in VISUAL else "normal"
        audio = sig.audio if sig is not None and sig.audio in AUDIO else None
        audio_id = (audio, sig.key if sig is not None else "")
        if visual != self._visual:
            log.info("gpio: LED %s pattern", visual)
            self._visual = visual
            self._cancel(self._visual_task)
            self._visual_task = asyncio.create_task(self.led_player.play(VISUAL[visual]), name=f"led-{visual}")
        if audio_id != self._audio_id:
            if audio or (self._audio_id and self._audio_id[0]):
                log.info("gpio: buzzer %s", f"{audio} pattern" if audio else "off")
            self._audio_id = audio_id
            self._cancel(self._audio_task)
            self.buzzer.set(0.0)
            self._audio_task = (asyncio.create_task(self.buzzer_player.play(AUDIO[audio]), name=f"buzzer-{audio}")
                                if audio else None)
        for task in (self._audio_task, self._visual_task):   # surface a crashed player
            if task is not None and task.done() and not task.cancelled() and task.exception():
                raise RuntimeError(f"gpio pattern task {task.get_name()} failed") from task.exception()

    def playing(self) -> set[asyncio.Task[None]]:
        """The pattern tasks still running (one that ends or fails should wake the follower)."""
        return {t for t in (self._audio_task, self._visual_task) if t is not None and not t.done()}

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and not task.done():
            task.cancel()

    def all_off(self) -> None:
        """Immediately silence the buzzer and darken the LED (safe from any thread, at exit)."""
        self.buzzer.set(0.0)
        self.led.set(0.0)

    async def aclose(self) -> None:
        self.all_off()
        tasks = [t for t in (self._audio_task, self._visual_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.all_off()


def build_devices(cfg: GpioConfig, factory: Any, button: bool = True) -> tuple[PinOutput, PinOutput, Any]:
    """gpiozero Buzzer, PWMLED (LED when the pin has no PWM) and Button on the configured pins."""
    from gpiozero import LED, PWMLED, Button, Buzzer
    from gpiozero.exc import GPIOZeroError, PinPWMUnsupported

    made: list[Any] = []
    opening, pin = "buzzer", cfg.buzzer_pin
    try:
        buzzer = Buzzer(cfg.buzzer_pin, pin_factory=factory)
        made.append(buzzer)
        opening, pin = "led", cfg.led_pin
        try:
            led, pwm = PWMLED(cfg.led_pin, pin_factory=factory), True
        except PinPWMUnsupported:
            led, pwm = LED(cfg.led_pin, pin_factory=factory), False
        made.append(led)
        opening, pin = "button", cfg.button_pin
        btn = Button(cfg.button_pin, pull_up=True, bounce_time=0.05, pin_factory=factory) if button else None
    except GPIOZeroError as exc:
        for device in made:
            device.close()
        raise GpioError(f"gpio: cannot open pins {cfg.buzzer_pin}/{cfg.led_pin}/{cfg.button_pin} ({exc}); "
                        "check [gpio] pins, and that no other program (another medtrack?) uses them",
                        opening, pin, exc) from None
    return PinOutput(buzzer, "buzzer", False), PinOutput(led, "led", pwm), btn


class AckButton:
    """Acknowledge on release; held >= long_press_s = long press. gpiozero calls back from its own
    thread on a real board, so the acknowledge is handed to the event loop."""

    def __init__(self, button: Any, hub: Hub, long_press_s: float, loop: asyncio.AbstractEventLoop,
                 clock: Clock = time.monotonic):
        self.button, self.hub, self.long_press_s, self.loop, self.clock = button, hub, long_press_s, loop, clock
        self._pressed_at: float | None = None
        button.when_pressed = self._pressed
        button.when_released = self._released

    def _pressed(self) -> None:
        self._pressed_at = self.clock()
        log.debug("gpio button pressed")

    def _released(self) -> None:
        if self._pressed_at is None:
            return
        held = self.clock() - self._pressed_at
        self._pressed_at = None
        log.debug("gpio button released after %.2f s", held)
        self.loop.call_soon_threadsafe(self._ack, held >= self.long_press_s)

    def _ack(self, long: bool) -> None:
        events = self.hub.press(long)
        log.info("button %s: %s", "long press" if long else "press",
                 ", ".join(f"{e.kind} {e.condition}" for e in events) if events else "nothing to do")


def _install_sigterm(loop: asyncio.AbstractEventLoop, off: Callable[[], None]) -> Callable[[], None] | None:
    """When nobody handles SIGTERM (it would kill the process with the buzzer possibly on), switch
    the outputs off first, then die as before. Returns the uninstaller, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return None   # the service handles SIGTERM: it sets stop, and serve's finally runs

    def on_sigterm() -> None:
        log.warning("gpio: SIGTERM; buzzer off")
        off()
        loop.remove_signal_handler(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):
        return None

    def uninstall() -> None:
        handle = getattr(loop, "_signal_handlers", {}).get(signal.SIGTERM)
        if handle is not None and getattr(handle, "_callback", None) is on_sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
    return uninstall


async def serve(hub: Hub, stop: asyncio.Event, *, factory: Any = None, clock: Clock | None = None,
                sleep: Sleep = asyncio.sleep) -> None:
    """Output protocol entry point: drive the buzzer, LED and button until ``stop`` is set."""
    cfg = hub.config.gpio
    clock = clock or time.monotonic
    mock = False
    if factory is None:
        factory, mock = make_pin_factory(cfg.pin_factory)
    try:
        buzzer, led, button = build_devices(cfg, factory)
    except GpioError as exc:
        hub.set_health("gpio", "down", str(exc))
        log.error("%s", exc)
        await stop.wait()
        return
    outputs = SignalOutputs(buzzer, led, clock, sleep)
    atexit.register(outputs.all_off)
    loop = asyncio.get_running_loop()
    uninstall = _install_sigterm(loop, outputs.all_off)
    AckButton(button, hub, cfg.long_press_s, loop, clock)
    hub.set_health("gpio", "degraded" if mock else "ok",
                   "mock pins: no buzzer or LED is driven" if mock else
                   f"buzzer {cfg.buzzer_pin}, LED {cfg.led_pin}, button {cfg.button_pin}")
    signals = hub.signals.subscribe(maxsize=1, name="gpio")   # the latest signal wins
    sig = hub.signals.latest
    stop_wait = asyncio.ensure_future(stop.wait())
    next_signal: asyncio.Future[Signal] = asyncio.ensure_future(signals.get())
    try:
        while not stop.is_set():
            outputs.follow(sig)
            await asyncio.wait({stop_wait, next_signal, *outputs.playing()}, return_when=asyncio.FIRST_COMPLETED)
            if next_signal.done():
                sig = next_signal.result()
                next_signal = asyncio.ensure_future(signals.get())
    finally:
        outputs.all_off()
        for fut in (stop_wait, next_signal):
            fut.cancel()
        signals.close()
        with contextlib.suppress(Exception):
            await outputs.aclose()
        for device in (buzzer.device, led.device, button):
            with contextlib.suppress(Exception):
                device.close()
        atexit.unregister(outputs.all_off)
        if uninstall is not None:
            uninstall()
        log.info("gpio: stopped; buzzer off")


# ---------------------------------------------------------------------------------- test-alarm

async def run_test_alarm(cfg: GpioConfig, priorities: list[str], *, factory: Any = None,
                         clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
                         out: Callable[[str], None] = print) -> int:
    """Play each priority's buzzer burst once with its LED pattern on the configured pins."""
    mock = False
    if factory is None:
        factory, mock = make_pin_factory(cfg.pin_factory)
    buzzer, led, _ = build_devices(cfg, factory, button=False)
    outputs = SignalOutputs(buzzer, led, clock, sleep)
    atexit.register(outputs.all_off)
    if mock:
        out("test-alarm: mock pins (no GPIO hardware): the pin changes are logged instead")
        if not log.isEnabledFor(logging.DEBUG):
            log.setLevel(logging.DEBUG)
    try:
        for i, name in enumerate(priorities):
            audio_name, visual_name = TEST_SEQUENCE[name]
            audio = AUDIO[audio_name] if audio_name else None
            visual = VISUAL[visual_name]
            shown = max(3.0, audio.burst_s if audio else 0.0)
            cycles = max(2, math.ceil(shown / (visual.period_s or visual.burst_s)))
            out(f"test-alarm: {name}: buzzer {audio_name or 'silent'} "
                f"({audio.burst_s:.1f} s), LED {visual_name} ({cycles} cycles)" if audio else
                f"test-alarm: {name}: LED {visual_name}")
            jobs = [outputs.led_player.play(visual, cycles)]
            if audio:
                jobs.append(outputs.buzzer_player.play(audio, 1))
            await asyncio.gather(*jobs)
            if i < len(priorities) - 1:
                await sleep(1.0)
    finally:
        await outputs.aclose()
        buzzer.device.close()
        led.device.close()
        atexit.unregister(outputs.all_off)
    out("test-alarm: done; buzzer off")
    return 0


def cli_test_alarm(args: argparse.Namespace) -> int:
    """`medtrack test-alarm [--priority high|medium|low|technical|all]`."""
    from edge import config as config_mod

    cfg = config_mod.load(getattr(args, "config", None))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=cfg.service.log_level,
                            format="%(relativeCreated)7.0f ms %(levelname)s %(name)s: %(message)s")
    priority = getattr(args, "priority", "all") or "all"
    priorities = list(TEST_SEQUENCE) if priority == "all" else [priority]
    try:
        return asyncio.run(run_test_alarm(cfg.gpio, priorities))
    except GpioError as exc:
        print(f"medtrack: {exc}")
        return 1
