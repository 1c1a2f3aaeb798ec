"""gpiozero pins on an NVIDIA Jetson through Jetson.GPIO ([gpio] pin_factory = "jetson").

gpiozero has no Jetson pin factory (its lgpio/RPi.GPIO/native factories need a Pi board
revision). This adapter reuses gpiozero's ``MockFactory`` bookkeeping (BCM names, pin
reservation, the 40-pin header layout, which the Jetson dev kits share) and mirrors each pin to the
hardware: outputs with ``GPIO.output``, inputs with ``GPIO.input`` plus ``add_event_detect`` edge
callbacks that drive gpiozero's own edge handling. Jetson.GPIO runs in BCM mode, so the Pi's BCM
numbers land on the same header pins (BCM 17 = pin 11, 27 = pin 13, 22 = pin 15).

Limits: no PWM (gpiozero's PWMLED falls back to an on/off LED), and no software pull resistors
(Jetson.GPIO ignores them): the button needs an external 10 kOhm pull-up to 3.3 V.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

log = logging.getLogger(__name__)


def _import_gpio() -> Any:
    try:
        return importlib.import_module("Jetson.GPIO")
    except Exception as exc:  # noqa: BLE001 - ImportError, or RuntimeError off a Jetson
        raise RuntimeError(f"Jetson.GPIO not available ({exc}); on a Jetson run "
                           "`/opt/medtrack/venv/bin/pip install Jetson.GPIO` and add the user to group gpio") from exc


class JetsonPin(MockPin):
    """A MockPin whose state is mirrored to (outputs) or driven by (inputs) a Jetson.GPIO channel."""

    def __init__(self, factory: JetsonFactory, info: Any):
        self._gpio = factory.gpio
        self._channel = int(str(info.name).removeprefix("GPIO"))
        self._hw_function: str | None = None
        self._closing = False
        super().__init__(factory, info)

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        if self._closing or value == self._hw_function:
            return
        gpio = self._gpio
        if self._hw_function == "input":
            with contextlib.suppress(Exception):
                gpio.remove_event_detect(self._channel)
        if value == "output":
            gpio.setup(self._channel, gpio.OUT, initial=gpio.HIGH if self._state else gpio.LOW)
        else:
            gpio.setup(self._channel, gpio.IN)
            gpio.add_event_detect(self._channel, gpio.BOTH, callback=self._on_edge)
            self._sync_input()
        self._hw_function = value

    def _set_state(self, value: float) -> None:
        super()._set_state(value)
        self._gpio.output(self._channel, self._gpio.HIGH if self._state else self._gpio.LOW)

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)  # bookkeeping only: Jetson.GPIO has no software pulls
        if self._hw_function == "input":
            self._sync_input()

    def _sync_input(self) -> None:
        if self._gpio.input(self._channel):
            self.drive_high()
        else:
            self.drive_low()

    def _on_edge(self, channel: int) -> None:  # Jetson.GPIO's event thread
        if self._function == "input" and not self._closing:
            self._sync_input()

    def close(self) -> None:
        self._closing = True
        try:
            super().close()
        finally:
            if self._hw_function == "input":
                with contextlib.suppress(Exception):
                    self._gpio.remove_event_detect(self._channel)
            if self._hw_function is not None:
                with contextlib.suppress(Exception):
                    self._gpio.cleanup(self._channel)
            self._hw_function = None
            self._closing = False


class JetsonFactory(MockFactory):
    """gpiozero pin factory for Jetson dev kits (40-pin header, BCM numbering)."""

    def __init__(self, gpio: Any = None):
        self.gpio = gpio if gpio is not None else _import_gpio()
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)
        super().__init__(pin_class=JetsonPin)
        log.info("gpio: Jetson.GPIO pins (%s)", getattr(self.gpio, "model", "Jetson"))

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.gpio.cleanup()
