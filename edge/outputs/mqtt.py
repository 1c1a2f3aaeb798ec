"""MQTT output (optional, [mqtt] enabled = true): state, alarm events, health and availability to a
nurse station or Home Assistant, acknowledge commands from the ward, Home Assistant discovery.

Topics (``<prefix>/<device_id>/...``, see docs/MQTT.md):
  state         retained, QoS 0; at most one per state_interval_s, at once on a label change
  event         QoS 1, not retained; every alarm event from the durable outbox, in order
  alarm         retained, QoS 1; the alarm snapshot (Home Assistant binary_sensor)
  health        retained, QoS 0; every health_interval_s
  availability  retained, QoS 1; "online", and "offline" as the last will
  command       subscribed, QoS 1: {"action": "acknowledge", "by": "<who>", "long": false},
                {"action": "pause", "minutes": 15, "by": "<who>"} or {"action": "resume", "by": "<who>"}

Alarm events are committed to the outbox (edge.outbox) before they are announced; this module
only drains it, marking each event delivered after the broker's PUBACK. The alarm on the box never
waits for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.alarm import PAUSE_MINUTES
from edge.config import Config, MqttConfig
from edge.events import EmotionState, utc_now_iso
from edge.hub import Hub
from edge.outbox import Outbox, attach

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

Backoff = Callable[[int], Awaitable[None]]
"""Awaited before reconnection attempt n (0, 1, 2 ...); the default sleeps exponentially longer."""

MAX_COMMAND_BYTES = 512
_BY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}")
_TOPIC_PART_RE = re.compile(r"[^/+#\x00]+(/[^/+#\x00]+)*")
_NODE_RE = re.compile(r"[^A-Za-z0-9_-]")


# ----------------------------------------------------------------------------------- topics

@dataclass(frozen=True)
class Topics:
    base: str
    state: str
    event: str
    alarm: str
    health: str
    availability: str
    command: str
    ha_status: str
    discovery_prefix: str

    @classmethod
    def from_config(cls, config: Config) -> Topics:
        m, device_id = config.mqtt, config.service.device_id
        for key, value in (("mqtt.topic_prefix", m.topic_prefix), ("service.device_id", device_id),
                           ("mqtt.discovery_prefix", m.discovery_prefix)):
            if not _TOPIC_PART_RE.fullmatch(value):
                raise ValueError(f"{key}: {value!r} cannot be used in an MQTT topic; "
                                 "use letters, digits, - and _ (no '+', '#', or empty levels)")
        base = f"{m.topic_prefix}/{device_id}"
        return cls(base=base, state=f"{base}/state", event=f"{base}/event", alarm=f"{base}/alarm",
                   health=f"{base}/health", availability=f"{base}/availability",
                   command=f"{base}/command", ha_status=f"{m.discovery_prefix}/status",
                   discovery_prefix=m.discovery_prefix)


# ----------------------------------------------------------------------------------- commands

class CommandError(ValueError):
    """A command payload that is malformed or not allowed; str() says why."""


@dataclass(frozen=True)
class Command:
    action: str
    by: str
    long: bool = False
    minutes: int = 0


def parse_command(payload: bytes | bytearray | str | None) -> Command:
    """Validate a command payload strictly: a JSON object with action "acknowledge" (optional
    boolean "long"), "pause" ("minutes": one of PAUSE_MINUTES) or "resume", and a short "by";
    nothing else."""
    if payload is None or len(payload) == 0:
        raise CommandError("empty payload")
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"payload of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise CommandError("not a JSON object")
    action = doc.get("action")
    allowed = {"acknowledge": {"long"}, "pause": {"minutes"}, "resume": set()}
    if action not in allowed:
        raise CommandError(f"action {action!r} not allowed (only 'acknowledge', 'pause' or 'resume')")
    unknown = set(doc) - {"action", "by"} - allowed[action]
    if unknown:
        raise CommandError(f"unknown keys {sorted(unknown)}")
    by = doc.get("by")
    if not isinstance(by, str) or not _BY_RE.fullmatch(by):
        raise CommandError("'by' must be 1-64 letters, digits, space or ._@:- naming who acknowledges")
    if action == "pause":
        minutes = doc.get("minutes")
        if isinstance(minutes, bool) or minutes not in PAUSE_MINUTES:
            raise CommandError(f"'minutes' must be one of {', '.join(map(str, PAUSE_MINUTES))}")
        return Command("pause", by, minutes=int(minutes))
    if action == "resume":
        return Command("resume", by)
    long = doc.get("long", False)
    if not isinstance(long, bool):
        raise CommandError("'long' must be true or false")
    return Command("acknowledge", by, long)


def handle_command(hub: Hub, payload: bytes | bytearray | str | None, retained: bool = False) -> bool:
    """Apply one command message; a bad one is logged and ignored. True if it was applied."""
    if retained:
        log.warning("MQTT command ignored: retained commands are refused (a stale acknowledge would "
                    "repeat on every reconnect); clear it by publishing an empty retained message")
        return False
    try:
        cmd = parse_command(payload)
    except CommandError as exc:
        log.warning("MQTT command ignored: %s", exc)
        return False
    try:
        if cmd.action == "pause":
            done = hub.pause(cmd.minutes, f"mqtt:{cmd.by}")
        elif cmd.action == "resume":
            done = hub.resume(f"mqtt:{cmd.by}")
        else:
            event = hub.acknowledge(f"mqtt:{cmd.by}", cmd.long)
    except Exception:  # noqa: BLE001 - a failing handler must not end the MQTT session
        log.exception("MQTT %s by %s failed", cmd.action, cmd.by)
        return False
    if cmd.action != "acknowledge":
        log.info("MQTT %s by mqtt:%s%s", cmd.action, cmd.by, "" if done else " (nothing to do)")
        return True
    log.info("MQTT acknowledge by mqtt:%s%s", cmd.by, "" if event else " (no active alarm)")
    return True


# ----------------------------------------------------------------------------------- payloads

def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), default=str)


def state_payload(state: EmotionState, device_id: str) -> str:
    return _dumps({"device_id": device_id, **state.to_dict()})


def health_payload(hub: Hub, outbox: Outbox) -> str:
    return _dumps({
        "device_id": hub.config.service.device_id,
        "time": utc_now_iso(),
        "uptime_s": round(hub.uptime_s(), 1),
        "health": {name: h.to_dict() for name, h in hub.health.items()},
        "metrics": hub.metrics,
        "outbox_pending": outbox.pending(),
        "outbox_dropped": outbox.dropped,
    })


def alarm_payload(hub: Hub) -> str:
    return _dumps({"device_id": hub.config.service.device_id, "time": utc_now_iso(), **hub.alarm_snapshot()})


def discovery_messages(config: Config, topics: Topics) -> list[tuple[str, str]]:
    """(topic, payload) of the Home Assistant discovery configs: label, distress and sound sensors, the
    alarm binary_sensor and the acknowledge button, all on one device."""
    device_id = config.service.device_id
    node = _NODE_RE.sub("_", device_id)
    device: dict[str, Any] = {
        "identifiers": [f"medtrack_{node}"],
        "name": f"MedTrack {device_id}",
        "manufacturer": "MedTrack",
        "model": "MedTrack Edge",
        "sw_version": __version__,
    }
    if config.service.location:
        device["suggested_area"] = config.service.location
    common = {
        "device": device,
        "origin": {"name": "MedTrack Edge", "sw_version": __version__},
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("sensor", "label", {
            "name": "Emotion", "icon": "mdi:emoticon-outline",
            "state_topic": topics.state, "value_template": "{{ value_json.label }}",
            "json_attributes_topic": topics.state,
            "json_attributes_template": "{{ value_json.probs | tojson }}",
        }),
        ("sensor", "distress", {
            "name": "Distress", "icon": "mdi:heart-pulse", "state_class": "measurement",
            "suggested_display_precision": 2,
            "state_topic": topics.state, "value_template": "{{ value_json.distress }}",
        }),
        ("sensor", "sound", {
            "name": "Sound", "icon": "mdi:ear-hearing",
            "state_topic": topics.state, "value_template": "{{ value_json.sounds.now | default('none') }}",
            "json_attributes_topic": topics.state,
            "json_attributes_template": "{{ value_json.sounds.shares | default({}) | tojson }}",
        }),
        ("binary_sensor", "alarm", {
            "name": "Alarm", "device_class": "problem",
            "state_topic": topics.alarm,
            "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            "json_attributes_topic": topics.alarm,
        }),
        ("button", "acknowledge", {
            "name": "Acknowledge", "icon": "mdi:bell-check",
            "command_topic": topics.command, "qos": 1, "retain": False,
            "payload_press": _dumps({"action": "acknowledge", "by": "home-assistant"}),
        }),
    ]
    return [
        (f"{topics.discovery_prefix}/{component}/{node}/{object_id}/config",
         _dumps({**body, "unique_id": f"medtrack_{node}_{object_id}", **common}))
        for component, object_id, body in entities
    ]


# ----------------------------------------------------------------------------------- connection

def exponential_backoff(base_s: float = 1.0, max_s: float = 60.0, jitter: float = 0.2,
                        rng: Callable[[], float] = random.random) -> Backoff:
    """base_s x 2^attempt, capped at max_s, spread by +-jitter so a ward of boxes does not
    reconnect in lockstep after a broker restart."""
    async def wait(attempt: int) -> None:
        delay = min(max_s, base_s * 2 ** min(attempt, 30))
        await asyncio.sleep(delay * (1 + jitter * (2 * rng() - 1)))
    return wait


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """The TLS context for [mqtt] tls = true: ca_file (or the system store), optional client cert."""
    ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
    if cfg.client_cert:
        ctx.load_cert_chain(cfg.client_cert, cfg.client_key or None)
    return ctx


async def _first_of(coro: Awaitable[Any], stop: asyncio.Event) -> None:
    """Await coro unless stop is set first (then cancel it)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper):
            t.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)


class _Session:
    """One connection: publishers and the command listener, ended by stop or by a broken link."""

    def __init__(self, hub: Hub, client: aiomqtt.Client, outbox: Outbox, topics: Topics):
        self.hub, self.client, self.outbox, self.topics = hub, client, outbox, topics
        self.cfg = hub.config.mqtt
        self.device_id = hub.config.service.device_id

    async def run(self, stop: asyncio.Event) -> None:
        c, t = self.client, self.topics
        if self.cfg.commands:
            await c.subscribe(t.command, qos=1)
        if self.cfg.discovery:
            await c.subscribe(t.ha_status, qos=1)
        await c.publish(t.availability, "online", qos=1, retain=True)  # online = commands are heard
        if self.cfg.discovery:
            await self.publish_discovery()
        await c.publish(t.alarm, alarm_payload(self.hub), qos=1, retain=True)
        jobs: list[Coroutine[Any, Any, None]] = [
            self.pump_events(), self.pump_states(), self.pump_alarm(), self.pump_health(), self.listen()]
        tasks = [asyncio.create_task(j) for j in jobs]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel_all([*tasks, stopper])
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        # Clean shutdown: the will is not sent on a clean DISCONNECT, so say it ourselves.
        with contextlib.suppress(Exception):
            await c.publish(t.availability, "offline", qos=1, retain=True, timeout=1.0)

    async def publish_discovery(self) -> None:
        for topic, payload in discovery_messages(self.hub.config, self.topics):
            await self.client.publish(topic, payload, qos=1, retain=True)

    async def pump_events(self) -> None:
        while True:
            await self.outbox.wait()
            for item in self.outbox.peek(100):
                payload = _dumps({"device_id": self.device_id, **item.payload})
                await self.client.publish(self.topics.event, payload, qos=1, retain=False)  # awaits PUBACK
                self.outbox.mark_delivered(item.seq)
            self.hub.metrics["mqtt_outbox_pending"] = float(self.outbox.pending())

    async def pump_states(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.cfg.state_interval_s
        sub = self.hub.states.subscribe(maxsize=8, name="mqtt-state")
        last_label: str | None = None
        last_t = float("-inf")
        pending: EmotionState | None = None

        async def send(state: EmotionState) -> None:
            nonlocal last_label, last_t
            await self.client.publish(self.topics.state, state_payload(state, self.device_id), qos=0, retain=True)
            last_label, last_t = state.label, loop.time()

        try:
            if self.hub.latest_state is not None:
                await send(self.hub.latest_state)
            while True:
                timeout = None if pending is None else max(0.0, last_t + interval - loop.time())
                try:
                    async with asyncio.timeout(timeout):
                        state = await sub.get()
                except TimeoutError:
                    assert pending is not None
                    await send(pending)
                    pending = None
                    continue
                if state.label != last_label or loop.time() - last_t >= interval:
                    await send(state)
                    pending = None
                else:
                    pending = state  # the latest wins; sent when the interval is up
        finally:
            sub.close()

    async def pump_alarm(self) -> None:
        sub = self.hub.events.subscribe(maxsize=8, name="mqtt-alarm")
        try:
            while True:
                await sub.get()
                while sub.pending():  # a burst of transitions: one snapshot of the latest
                    sub.get_nowait()
                await self.client.publish(self.topics.alarm, alarm_payload(self.hub), qos=1, retain=True)
        finally:
            sub.close()

    async def pump_health(self) -> None:
        while True:
            self.hub.metrics["mqtt_outbox_pending"] = float(self.outbox.pending())
            await self.client.publish(self.topics.health, health_payload(self.hub, self.outbox), qos=0, retain=True)
            await asyncio.sleep(self.cfg.health_interval_s)

    async def listen(self) -> None:
        async for msg in self.client.messages:
            topic = str(msg.topic)
            payload = msg.payload if isinstance(msg.payload, bytes | bytearray | str) else None
            if topic == self.topics.command and self.cfg.commands:
                handle_command(self.hub, payload, retained=bool(msg.retain))
            elif topic == self.topics.ha_status and self.cfg.discovery:
                if payload in (b"online", "online"):
                    log.info("Home Assistant is online: re-sending discovery and state")
                    await self.publish_discovery()
                    await self.client.publish(self.topics.alarm, alarm_payload(self.hub), qos=1, retain=True)
                    if self.hub.latest_state is not None:
                        await self.client.publish(self.topics.state, state_payload(
                            self.hub.latest_state, self.device_id), qos=0, retain=True)
            else:
                log.debug("MQTT message on unexpected topic %s ignored", topic)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the tasks and wait until every one has ended. A task that outlives its cancel is
    cancelled again: on Python 3.11 (Raspberry Pi OS Bookworm) ``asyncio.wait_for``, which aiomqtt
    uses for every QoS 1 publish, drops a cancel that arrives as the PUBACK does (CPython
    gh-86296), and the pump would carry on publishing after shutdown."""
    for task in tasks:
        task.cancel()
    pending = {t for t in tasks if not t.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            task.cancel()
    for task in tasks:   # retrieve the outcomes so none is logged as never retrieved
        if not task.cancelled():
            task.exception()


async def serve(hub: Hub, stop: asyncio.Event, *, outbox: Outbox | None = None,
                backoff: Backoff | None = None) -> None:
    """Run the MQTT output until stop is set: connect, publish, reconnect with backoff. ``outbox``
    is the one the service attached before the pipeline started; None (run alone, or the service
    could not open it) attaches one here, before anything can fail."""
    cfg = hub.config.mqtt
    if outbox is None:
        outbox = attach(hub)  # events are queued from here on, even while MQTT is broken
    try:
        import aiomqtt
    except ImportError:
        _fail(hub, "aiomqtt is not installed; pip install 'medtrack-edge[mqtt]' or set [mqtt] enabled = false")
        await stop.wait()
        return
    try:
        topics = Topics.from_config(hub.config)
        ctx = tls_context(cfg) if cfg.tls else None
    except (ValueError, OSError, ssl.SSLError) as exc:
        _fail(hub, f"MQTT not started: {exc}")
        await stop.wait()
        return
    wait = backoff or exponential_backoff(max_s=cfg.reconnect_max_s)
    where = f"{cfg.host}:{cfg.port}"
    attempt = 0
    hub.set_health("mqtt", "starting", f"connecting to {where}")
    while not stop.is_set():
        client = aiomqtt.Client(
            cfg.host, cfg.port,
            identifier=cfg.client_id or hub.config.service.device_id,
            username=cfg.username or None, password=cfg.password or None,
            will=aiomqtt.Will(topics.availability, "offline", qos=1, retain=True),
            keepalive=cfg.keepalive, clean_session=True, tls_context=ctx,
        )
        connected = asyncio.Event()

        async def connect_and_run(client: aiomqtt.Client = client, connected: asyncio.Event = connected) -> None:
            async with client:
                connected.set()
                hub.set_health("mqtt", "ok", f"connected to {where}")
                log.info("MQTT connected to %s as %s", where, client.identifier)
                await _Session(hub, client, outbox, topics).run(stop)  # returns soon after stop

        task = asyncio.create_task(connect_and_run())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and not connected.is_set():
                task.cancel()  # stop while still connecting: do not hold up the shutdown
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and stop.is_set() and not (current and current.cancelling()):
                break
            raise
        except aiomqtt.MqttError as exc:
            if hub.health.get("mqtt") is None or hub.health["mqtt"].status != "down":
                log.warning("MQTT broker %s unreachable (%s); %d events wait in the outbox",
                            where, exc, outbox.pending())
            hub.set_health("mqtt", "down", f"{where}: {exc}; {outbox.pending()} events queued")
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the output; retry later
            log.exception("MQTT session failed")
            hub.set_health("mqtt", "down", f"{where}: {exc.__class__.__name__}: {exc}")
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
        if connected.is_set():
            attempt = 0
        if stop.is_set():
            break
        await _first_of(wait(attempt), stop)
        attempt += 1
    log.info("MQTT output stopped")


def _fail(hub: Hub, message: str) -> None:
    log.error(message)
    hub.set_health("mqtt", "down", message)
