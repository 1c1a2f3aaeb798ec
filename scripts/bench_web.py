"""Loopback load on the status server while the pipeline runs (``bench.py web`` calls run_web_bench).

The server and the pipeline run in this process and event loop, as in the service; the load comes
from a separate client process (so it does not steal the server's loop): ``rate`` GET /api/status
per second for ``duration`` s, open loop (latency counted from each request's scheduled time, so a
stall is not hidden), at most ``max_inflight`` requests in flight (bounded; the rest count as
``skipped``).

Pipelines: ``service`` is the real edge.service.Service on the demo media (needs the models);
``fake`` is FakePipeline: a worker thread that does ~``work_ms`` of numpy work per frame (releasing
the GIL like TFLite) at ``fps`` and publishes states through the loop; ``auto`` picks service when
its models and media exist. fps_before / fps_during: states analysed per second before and during
the load. Bar: fps_during >= 0.9 x fps_before and p99_ms < 50.

The last line printed is one JSON object: fps_before, fps_during, p99_ms, p50_ms, max_ms, sent, ok,
errors, skipped, rate, duration_s, pipeline, pass.

    python scripts/bench_web.py [--rate 200] [--duration 20] [--warmup 10] [--pipeline auto|fake|service]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.events import AlarmEvent, EmotionState, utc_now_iso  # noqa: E402
from edge.hub import Hub  # noqa: E402
from edge.labels import LABELS  # noqa: E402


def fake_state(label: str = "neutral", distress: float = 0.1, t: float | None = None,
               confidence: float = 0.7, sounds: dict | None = None) -> EmotionState:
    """A plausible fused state (face live, voice silent; ``sounds`` what the microphone heard) for
    tests and the fake pipeline."""
    probs = tuple(confidence if name == label else (1 - confidence) / (len(LABELS) - 1) for name in LABELS)
    probs_d = {n: round(p, 4) for n, p in zip(LABELS, probs, strict=True)}
    return EmotionState(
        t=time.monotonic() if t is None else t, time=utc_now_iso(), probs=probs, label=label,
        confidence=confidence, distress=distress,
        modalities={"face": {"live": True, "weight": 0.42, "label": label, "confidence": confidence,
                             "probs": probs_d, "age_s": 0.1, "present": True},
                    "voice": {"live": False, "weight": 0.0, "present": False}},
        live=("face",),
        sounds=sounds or {},
    )


class FakeAlarm:
    """The smallest alarm the web needs: raise(), acknowledge via the hub, a snapshot."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.active: dict[str, Any] | None = None
        hub.alarm_snapshot = self.snapshot
        hub.set_ack_handler(self.acknowledge)

    def snapshot(self) -> dict[str, Any]:
        if self.active is None:
            return {"active": False, "priority": "none", "condition": None}
        return {"active": True, **self.active}

    def raise_alarm(self, condition: str = "distress", priority: str = "high", distress: float = 0.9) -> AlarmEvent:
        ev = AlarmEvent(kind="raised", condition=condition, priority=priority, distress=distress)
        self.active = {"priority": priority, "condition": condition, "since": ev.time, "acknowledged": False,
                       "acknowledged_by": None, "silenced_until": None, "silenced_for_s": 0.0, "audible": True}
        self.hub.emit_event(ev)
        return ev

    def acknowledge(self, by: str, long: bool = False) -> AlarmEvent | None:
        if self.active is None:
            return None
        self.active.update(acknowledged=True, acknowledged_by=by, audible=False,
                           silenced_for_s=600.0 if long else 120.0)
        ev = AlarmEvent(kind="silenced" if long else "acknowledged", condition=self.active["condition"],
                        priority=self.active["priority"], by=by)
        self.hub.emit_event(ev)
        return ev

    def clear(self) -> None:
        if self.active is not None:
            ev = AlarmEvent(kind="cleared", condition=self.active["condition"], priority=self.active["priority"])
            self.active = None
            self.hub.emit_event(ev)


class FakePipeline:
    """Worker thread: ~work_ms of GIL-free numpy work per frame at up to ``fps``; each result is
    published on the hub from the loop (as the real pipeline does). ``frames`` counts published states."""

    def __init__(self, hub: Hub, fps: float = 15.0, work_ms: float = 20.0):
        self.hub, self.fps, self.work_ms = hub, fps, work_ms
        self.frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _publish(self, i: int) -> None:
        label = LABELS[(i // 40) % len(LABELS)]
        distress = 0.15 + 0.7 * (0.5 + 0.5 * math.sin(i / 25.0)) * (label in ("sad", "fear", "angry"))
        self.hub.states.publish(fake_state(label, round(distress, 3), t=self.hub.clock()))
        self.frames += 1
        self.hub.metrics["fps"] = self.fps
        self.hub.metrics["face_ms_p50"] = self.work_ms

    def _work(self) -> None:
        import numpy as np

        a = np.random.default_rng(0).standard_normal((192, 192)).astype(np.float32)
        # calibrate: how many matmuls make work_ms
        t0 = time.perf_counter()
        for _ in range(5):
            a @ a
        reps = max(1, int(self.work_ms / max((time.perf_counter() - t0) * 1000 / 5, 1e-3)))
        period = 1.0 / self.fps
        nxt = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            for _ in range(reps):
                a @ a
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._publish, i)
            i += 1
            nxt += period
            delay = nxt - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.perf_counter()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.hub.set_health("camera", "ok", "fake")
        self.hub.set_health("microphone", "disabled", "fake pipeline")
        self._thread = threading.Thread(target=self._work, name="fake-pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)


# ------------------------------------------------------------------------------- load client

async def _client(url: str, token: str, rate: float, duration: float, max_inflight: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = skipped = 0
    inflight = 0
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = aiohttp.TCPConnector(limit=max_inflight)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=conn, headers=headers, timeout=timeout) as session:
        async def one(scheduled: float) -> None:
            nonlocal errors, inflight
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        return
                lat.append((time.perf_counter() - scheduled) * 1000.0)
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            finally:
                inflight -= 1

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration)
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if inflight >= max_inflight:
                skipped += 1
                continue
            inflight += 1
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    lat.sort()

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

    return {"sent": n, "ok": len(lat), "errors": errors, "skipped": skipped, "p50_ms": q(0.50),
            "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": round(lat[-1], 2) if lat else None,
            "achieved_rps": round(len(lat) / elapsed, 1)}


# ------------------------------------------------------------------------------- bench

def _service_available(cfg: Config) -> bool:
    try:
        from edge.demo import find_demo_media

        find_demo_media()
    except Exception:  # noqa: BLE001
        return False
    return all(cfg.model_path(m).exists() for m in (cfg.face.model, cfg.face.detector))


async def run_web_bench(rate: float = 200.0, duration: float = 20.0, warmup: float = 10.0,
                        pipeline: str = "auto", max_inflight: int = 64, config: Config | None = None,
                        fake_fps: float = 15.0, fake_work_ms: float = 20.0) -> dict[str, Any]:
    """Run the pipeline and the web server here, measure fps for ``warmup`` s, then load
    /api/status at ``rate`` for ``duration`` s from a client process; returns the result dict."""
    from edge.outputs import web
    from edge.outputs.auth import Authenticator, token_path

    base = config or config_mod.from_dict({})
    state_dir = tempfile.mkdtemp(prefix="medtrack-bench-")
    if pipeline == "auto":
        pipeline = "service" if _service_available(base) else "fake"
    stop = asyncio.Event()
    service_task = None
    fake: FakePipeline | None = None
    if pipeline == "service":
        from edge.demo import demo_config, find_demo_media
        from edge.service import Service

        os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
        video, audio = find_demo_media()
        cfg = demo_config(base, video, audio, state_dir, "127.0.0.1", 8080)  # web served below
        service = Service(cfg, tasks=["store", "alarm"])
        hub = service.hub
        service_task = asyncio.create_task(service.run(stop))

        def frames() -> int:
            return service.pipeline.frames_analysed if service.pipeline else 0
    else:
        cfg = config_mod.replace(base, service={"state_dir": state_dir})
        hub = Hub(cfg)
        FakeAlarm(hub)
        fake = FakePipeline(hub, fake_fps, fake_work_ms)
        fake.start()

        def frames() -> int:
            return fake.frames  # type: ignore[union-attr]

    from edge import store as store_mod

    store_task = None
    if service_task is not None:   # the service opens the store and records the timeline
        while service.ready_at is None and not service_task.done():
            await asyncio.sleep(0.05)
        store = service.store
    else:
        store = store_mod.attach(hub)
        store_task = asyncio.create_task(store_mod.serve(hub, stop, store=store))
    auth = Authenticator(token_path(state_dir), enabled=True)
    app = web.make_app(hub, store, cfg, auth=auth)
    runner, port = await web.start_site(app, "127.0.0.1", 0)
    try:
        await asyncio.sleep(2.0)  # let the pipeline settle
        f0, t0 = frames(), time.perf_counter()
        await asyncio.sleep(warmup)
        fps_before = (frames() - f0) / (time.perf_counter() - t0)
        cmd = [sys.executable, __file__, "--client", f"http://127.0.0.1:{port}/api/status",
               "--rate", str(rate), "--duration", str(duration), "--max-inflight", str(max_inflight)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE,
                                                    env={**os.environ, "MEDTRACK_BENCH_TOKEN": auth.token})
        f1, t1 = frames(), time.perf_counter()
        out, _ = await proc.communicate()
        fps_during = (frames() - f1) / (time.perf_counter() - t1)
        client = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stop.set()
        await runner.cleanup()
        if fake:
            fake.stop()
        if store_task:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store_task, 5)
        if service_task:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service_task, 10)
    result = {"fps_before": round(fps_before, 2), "fps_during": round(fps_during, 2), **client,
              "rate": rate, "duration_s": duration, "pipeline": pipeline}
    result["pass"] = bool(fps_during >= 0.9 * fps_before and client["p99_ms"] < 50 and client["errors"] == 0)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds to measure fps before the load")
    p.add_argument("--pipeline", choices=["auto", "fake", "service"], default="auto")
    p.add_argument("--max-inflight", type=int, default=64)
    p.add_argument("--config", help="TOML config (service pipeline)")
    p.add_argument("--client", help=argparse.SUPPRESS)  # internal: run the load client only
    args = p.parse_args(argv)
    if args.client:
        res = asyncio.run(_client(args.client, os.environ.get("MEDTRACK_BENCH_TOKEN", ""), args.rate,
                                  args.duration, args.max_inflight))
        print(json.dumps(res))
        return 0
    if args.rate <= 0 or args.duration <= 0 or args.rate * args.duration > 1_000_000:
        p.error("rate and duration must be positive and rate x duration at most 1,000,000")
    cfg = config_mod.load(args.config) if args.config else None
    res = asyncio.run(run_web_bench(args.rate, args.duration, args.warmup, args.pipeline,
                                    args.max_inflight, cfg))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
