"""The Jetson.GPIO adapter at its boundary: a fake Jetson.GPIO module records every call."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from gpiozero import LED, PWMLED, Button, Buzzer
from gpiozero.exc import PinPWMUnsupported

from edge import selfcheck
from edge.config import from_dict
from edge.outputs import gpio as gpio_mod
from edge.outputs.jetson_pins import JetsonFactory


class FakeGPIO(types.ModuleType):
    """The subset of the Jetson.GPIO API the adapter uses; inputs read from ``levels``."""

    BCM, OUT, IN, HIGH, LOW, BOTH = "BCM", "OUT", "IN", 1, 0, "BOTH"

    def __init__(self) -> None:
        super().__init__("Jetson.GPIO")
        self.calls: list[tuple[Any, ...]] = []
        self.levels: dict[int, int] = {}
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self.mode: str | None = None

    def setwarnings(self, flag: bool) -> None:
        self.calls.append(("setwarnings", flag))

    def setmode(self, mode: str) -> None:
        self.mode = mode

    def setup(self, channel: int, direction: str, initial: int | None = None) -> None:
        self.calls.append(("setup", channel, direction, initial))

    def output(self, channel: int, value: int) -> None:
        self.calls.append(("output", channel, value))

    def input(self, channel: int) -> int:
        return self.levels.get(channel, 1)

    def add_event_detect(self, channel: int, edge: str, callback: Callable[[int], None]) -> None:
        assert channel not in self.callbacks, "event detect added twice"
        self.callbacks[channel] = callback

    def remove_event_detect(self, channel: int) -> None:
        self.callbacks.pop(channel, None)

    def cleanup(self, channel: int | None = None) -> None:
        self.calls.append(("cleanup", channel))

    def set_level(self, channel: int, level: int) -> None:
        self.levels[channel] = level
        self.callbacks[channel](channel)


@pytest.fixture
def gpio(monkeypatch: pytest.MonkeyPatch) -> FakeGPIO:
    fake = FakeGPIO()
    pkg = types.ModuleType("Jetson")
    pkg.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "Jetson", pkg)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", fake)
    return fake


def test_outputs_are_mirrored_to_jetson_gpio(gpio: FakeGPIO) -> None:
    factory = JetsonFactory()
    assert gpio.mode == "BCM"
    buzzer = Buzzer(17, pin_factory=factory)
    assert ("setup", 17, "OUT", 0) in gpio.calls
    gpio.calls.clear()
    buzzer.on()
    buzzer.off()
    assert gpio.calls == [("output", 17, 1), ("output", 17, 0)]
    buzzer.close()
    assert gpio.calls[-1] == ("cleanup", 17)
    factory.close()


def test_no_pwm_so_the_led_falls_back_to_on_off(gpio: FakeGPIO) -> None:
    factory = JetsonFactory()
    with pytest.raises(PinPWMUnsupported):
        PWMLED(27, pin_factory=factory)
    led = LED(27, pin_factory=factory)  # the pin was released by the failed PWMLED
    led.on()
    assert gpio.calls[-1] == ("output", 27, 1)
    led.close()


def test_button_follows_hardware_edges(gpio: FakeGPIO) -> None:
    factory = JetsonFactory()
    presses: list[str] = []
    button = Button(22, pull_up=True, pin_factory=factory)  # external pull-up: idle level 1
    button.when_pressed = lambda: presses.append("pressed")
    assert ("setup", 22, "IN", None) in gpio.calls
    assert not button.is_pressed
    gpio.set_level(22, 0)
    assert button.is_pressed and presses == ["pressed"]
    gpio.set_level(22, 1)
    assert not button.is_pressed
    button.close()
    assert 22 not in gpio.callbacks and ("cleanup", 22) in gpio.calls


def test_pins_cannot_be_claimed_twice(gpio: FakeGPIO) -> None:
    factory = JetsonFactory()
    buzzer = Buzzer(17, pin_factory=factory)
    with pytest.raises(Exception, match="in use"):
        LED(17, pin_factory=factory)
    buzzer.close()


def test_selfcheck_claims_the_pins_through_the_adapter(gpio: FakeGPIO) -> None:
    cfg = from_dict({"gpio": {"pin_factory": "mock"}})
    result = selfcheck.check_gpio(cfg, JetsonFactory())
    assert result.status == "ok", result.summary
    assert result.details["factory_class"] == "JetsonFactory" and result.details["led_pwm"] is False


def test_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    with pytest.raises(RuntimeError, match="Jetson.GPIO not available"):
        JetsonFactory()


def test_config_selects_the_adapter(gpio: FakeGPIO) -> None:
    factory, mock = gpio_mod.make_pin_factory(from_dict({"gpio": {"pin_factory": "jetson"}}).gpio.pin_factory)
    assert isinstance(factory, JetsonFactory) and not mock
