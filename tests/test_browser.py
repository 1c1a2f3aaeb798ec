"""The status page in a real browser: Debian chromium, headless, driven over the DevTools protocol
(a tiny client on aiohttp's WebSocket; no selenium). Logs in, sees the state tile update live,
sees an alarm appear and acknowledges it from the page, in English and in French (phone-sized
viewport); with the real alarm logic, a pause of monitoring from the page; and the real demo
story's page with its alarm banner. No console errors, no CSP violations, no request leaves the
box. Screenshots go to artifacts/ (browser_*.png: EN/FR, phone 390-412 px and desktop 1280 px).
Skips when chromium is not installed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from script_loader import load_script

from edge import config as config_mod
from edge import store as store_mod
from edge.events import AlarmEvent
from edge.hub import Hub
from edge.outputs import auth as auth_mod
from edge.outputs import web
from edge.store import EventStore

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                                   "(apt-get install -y chromium)")]

bench_web = load_script("bench_web")

TIMEOUT = 20.0


class CDP:
    """Minimal Chrome DevTools Protocol client over one browser WebSocket (flattened sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self._id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
            else:
                self.events.append(data)

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._id] = fut
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, TIMEOUT)

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


class Page:
    def __init__(self, cdp: CDP, session: str):
        self.cdp, self.session = cdp, session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.cdp.send(method, params, self.session)

    async def eval(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": True})
        if "exceptionDetails" in res:
            raise AssertionError(f"page error in {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait(self, condition: str, timeout: float = TIMEOUT) -> None:
        """Wait until a JS condition holds (the page polls itself; the test only awaits)."""
        js = ("new Promise(res => { const f = () => { let ok = false; try { ok = !!(" + condition + "); }"
              " catch (e) {} if (ok) res(true); else setTimeout(f, 50); }; f(); })")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                try:
                    await asyncio.wait_for(self.eval(js), max(0.1, deadline - loop.time()))
                    return
                except RuntimeError as exc:  # the page navigated under the evaluation: ask the new one
                    if "context" not in str(exc).lower() and "navigat" not in str(exc).lower():
                        raise
                    if loop.time() > deadline:
                        raise TimeoutError from None
        except TimeoutError:
            body = await self.eval("document.body ? document.body.innerText.slice(0, 800) : ''")
            raise AssertionError(f"page never reached: {condition}\n--- page text ---\n{body}") from None

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def screenshot(self, path: Path, width: int = 412) -> None:
        mobile = width < 800
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": 915, "deviceScaleFactor": 1, "mobile": mobile})
        await self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        height = await self.eval("Math.ceil(document.documentElement.scrollHeight)")
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": mobile})
        await self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True})


async def new_page(cdp: CDP, lang: str) -> Page:
    target = await cdp.send("Target.createTarget", {"url": "about:blank"})
    att = await cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
    page = Page(cdp, att["sessionId"])
    for domain in ("Page", "Runtime", "Log", "Network"):
        await page.send(f"{domain}.enable")
    ua = (await cdp.send("Browser.getVersion"))["userAgent"]
    accept = "fr-FR,fr;q=0.9" if lang == "fr" else "en-GB,en;q=0.9"
    await page.send("Emulation.setUserAgentOverride", {"userAgent": ua, "acceptLanguage": accept})
    await page.send("Emulation.setLocaleOverride", {"locale": "fr-FR" if lang == "fr" else "en-GB"})
    await page.send("Emulation.setDeviceMetricsOverride",
                    {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True})
    return page


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[CDP]:
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "about:blank"]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    ws_url = ""
    seen: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while not ws_url:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("chromium exited:\n" + "".join(seen[-20:]))
                seen.append(line)
                if "DevTools listening on " in line:
                    ws_url = line.split("DevTools listening on ", 1)[1].strip()

        async def drain() -> None:
            assert proc.stderr is not None
            while await proc.stderr.readline():
                pass

        drainer = asyncio.create_task(drain())
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(ws_url, max_msg_size=0)
            cdp = CDP(ws)
            try:
                yield cdp
            finally:
                await cdp.close()
        drainer.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


SCREAMING = {"now": "scream", "shares": {"speech": 0.4, "scream": 0.35, "cry": 0.0, "moan": 0.0, "other": 0.05,
                                         "quiet": 0.2},
             "vocal_distress": {"present": True, "scream_s": 6.5, "distress_sound_s": 7.0, "window_s": 30.0,
                                "score": 0.91, "heard": "scream"}}


def seed_history(hub: Hub, store: EventStore | None, now: float) -> None:
    """30 minutes of timeline and a few past alarm events, as a running box would have."""
    assert store is not None
    labels = ["neutral"] * 600 + ["sad"] * 300 + ["fear"] * 240 + ["neutral"] * 659
    for i, label in enumerate(labels):
        ts = now - 1800 + i
        distress = {"neutral": 0.12, "sad": 0.45, "fear": 0.78}[label] + 0.04 * math.sin(i / 20)
        alarm = 1 if 1000 <= i < 1300 else 0
        store._pending.append((ts, label, round(distress, 3), alarm))
    store.flush_states()
    for kind, offset, by in (("raised", 800, None), ("acknowledged", 760, "button"), ("cleared", 500, None)):
        store.record(AlarmEvent(kind=kind, condition="distress", priority="high", by=by,
                                time=store_mod._iso(now - offset)))
    hub.emit_event(AlarmEvent(kind="technical", condition="mic_lost", priority="low",
                              time=store_mod._iso(now - 300)))
    hub.emit_event(AlarmEvent(kind="technical_cleared", condition="mic_lost", priority="low",
                              time=store_mod._iso(now - 290)))


async def test_page_in_real_browser(tmp_path: Path) -> None:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path), "device_id": "bed-12",
                                            "location": "Ward 3"}})
    hub = Hub(cfg)
    alarm = bench_web.FakeAlarm(hub)
    acked = asyncio.Event()
    orig_ack = alarm.acknowledge

    def ack(by: str, long: bool = False) -> AlarmEvent | None:
        ev = orig_ack(by, long)
        acked.set()
        return ev

    hub.set_ack_handler(ack)
    store = store_mod.attach(hub)
    seed_history(hub, store, time.time())
    hub.set_health("camera", "ok", "picamera2")
    hub.set_health("microphone", "ok", "USB mic")
    hub.set_health("store", "ok")
    hub.set_health("gpio", "degraded", "mock pins: no buzzer or LED is driven")
    hub.metrics.update({"fps": 5.0, "face_ms_p50": 31.2, "face_ms_p95": 44.0, "voice_window_ms_p50": 12.5,
                        "cpu_temp_c": 52.3})
    hub.models = [{"name": "face_expression", "file": "face_expression_int8.tflite", "sha256": "3f" * 32,
                   "backend": "ai_edge_litert"}]
    hub.states.publish(bench_web.fake_state("neutral", 0.1, t=hub.clock()))
    app = web.make_app(hub, store, cfg)
    runner, port = await web.start_site(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    token = auth_mod.load_or_create_token(auth_mod.token_path(tmp_path))
    try:
        async with chromium(tmp_path) as cdp:
            # ------------------------------------------------------------ English
            page = await new_page(cdp, "en")
            await page.goto(base + "/")
            await page.wait("location.pathname === '/login' && document.getElementById('token')")
            await page.wait("document.getElementById('login-btn').textContent === 'Log in'")
            await page.screenshot(ARTIFACTS / "browser_login.png")
            await page.eval("document.getElementById('token').focus()")
            await page.send("Input.insertText", {"text": token})
            await page.eval("document.getElementById('login-btn').click()")
            await page.wait("location.pathname === '/' && document.getElementById('conn').classList.contains('on')")
            await page.wait("document.getElementById('tile-label').textContent === 'Neutral'")

            hub.states.publish(bench_web.fake_state("fear", 0.72, t=hub.clock(), sounds=SCREAMING))
            await page.wait("document.getElementById('tile-label').textContent === 'Fear'")
            assert await page.eval("document.getElementById('sound-now').textContent") == "· Screaming"
            assert await page.eval("document.querySelectorAll('#sounds .bar').length") == 6
            assert "35%" in await page.eval("document.getElementById('sounds').textContent")
            assert await page.eval("document.getElementById('tile-distress').textContent") == "0.72"
            # colour by alarm level, not by emotion: a "Fear" reading with no alarm is a calm tile
            assert await page.eval("document.getElementById('tile').className") == "tile lvl-calm"
            assert "alarm threshold (0.55)" in await page.eval("document.getElementById('tile-bar-label').textContent")

            assert await page.eval("document.getElementById('alarm').hidden") is True
            alarm.raise_alarm(priority="high", distress=0.72)
            await page.wait("!document.getElementById('alarm').hidden")
            assert await page.eval("document.getElementById('alarm-cond').textContent") == "Distress"
            await page.wait("document.getElementById('tile').className === 'tile lvl-high'")
            assert "120 s" in await page.eval("document.getElementById('alarm-help').textContent")
            await page.wait("document.querySelectorAll('#history tbody tr').length >= 6")
            await page.wait("document.querySelectorAll('#sources .chip').length >= 3")
            await page.screenshot(ARTIFACTS / "browser_en_alarm.png")

            await page.eval("document.getElementById('ack').click()")
            await asyncio.wait_for(acked.wait(), TIMEOUT)
            assert alarm.active is not None and alarm.active["acknowledged_by"] == "web"
            await page.wait("document.getElementById('alarm').classList.contains('acked')")
            await page.wait("document.querySelector('#history tbody tr td:nth-child(2)').textContent"
                            " === 'Acknowledged'")
            # acknowledged: the state and the time left replace the Acknowledge button
            await page.wait("document.getElementById('ack').hidden && /^Acknowledged by web: sound back in "
                            "[12]:[0-5][0-9]/.test(document.getElementById('ack-state').textContent)")
            chips = await page.eval("document.getElementById('sources').textContent")
            assert "Camera: OK" in chips and "Buzzer and button: mock pins, no buzzer driven" in chips
            assert "no face in view" not in await page.eval("document.getElementById('mods').textContent")
            disk = await page.eval("[...document.querySelectorAll('#sys dt')].find(d => d.textContent === 'Disk')"
                                   ".nextElementSibling.textContent")
            assert " % used (" in disk and "GB free)" in disk, disk
            await page.screenshot(ARTIFACTS / "browser_en.png", width=390)
            # a 390 px phone: history rows stack, nothing is cut off on the right
            overflow = await page.eval("[...document.querySelectorAll('#history td')].filter(td => "
                                       "td.getBoundingClientRect().right > window.innerWidth + 1).length")
            assert overflow == 0
            assert await page.eval("getComputedStyle(document.querySelector('#history thead')).display") == "none"
            await page.screenshot(ARTIFACTS / "browser_en_desktop.png", width=1280)

            # ------------------------------------------------------------ French (same login)
            acked.clear()
            alarm.clear()
            alarm.raise_alarm(priority="medium", distress=0.6)
            hub.states.publish(bench_web.fake_state("sad", 0.61, t=hub.clock(), sounds=SCREAMING))
            fr = await new_page(cdp, "fr")
            await fr.goto(base + "/")
            await fr.wait("document.documentElement.lang === 'fr' && "
                          "document.getElementById('conn').classList.contains('on')")
            await fr.wait("document.getElementById('tile-label').textContent === 'Tristesse'")
            assert await fr.eval("document.getElementById('sound-now').textContent") == "· Cris"
            assert await fr.eval("document.getElementById('tile-distress').textContent") == "0,61"
            await fr.wait("!document.getElementById('alarm').hidden && "
                          "document.getElementById('ack').textContent === 'Acquitter'")
            await fr.wait("document.querySelectorAll('#history tbody tr').length >= 8")
            await fr.screenshot(ARTIFACTS / "browser_fr_alarm.png")
            await fr.eval("document.getElementById('ack').click()")
            await asyncio.wait_for(acked.wait(), TIMEOUT)
            await fr.wait("document.getElementById('alarm').classList.contains('acked')")
            await fr.wait("/^Acquittée par web/.test(document.getElementById('ack-state').textContent)")
            assert "Go libres)" in await fr.eval("document.getElementById('sys').textContent")
            assert "Buzzer et bouton : broches simulées" in await fr.eval("document.getElementById('sources').textContent")
            await fr.screenshot(ARTIFACTS / "browser_fr.png", width=390)
            await fr.screenshot(ARTIFACTS / "browser_fr_desktop.png", width=1280)

            # ------------------------------------------------------------ hygiene
            problems = [e["params"]["entry"] for e in cdp.events if e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"]["level"] == "error"]
            problems += [e["params"] for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"]
            assert not problems, problems
            urls = {e["params"]["request"]["url"] for e in cdp.events
                    if e.get("method") == "Network.requestWillBeSent"}
            assert urls and all(u.startswith(base) for u in urls), urls
            no_patient_media = [u for u in urls if any(x in u for x in (".jpg", ".png", ".wav", ".mp4", "image"))]
            assert not no_patient_media, no_patient_media
    finally:
        await runner.cleanup()


class ManualClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_pause_from_the_page_with_the_real_alarm_logic(tmp_path: Path) -> None:
    """The real AlarmService on a manual clock: an orange medium alarm over an "Angry" reading,
    acknowledged, then monitoring paused for 15 min from the page (countdown, grey tile), and
    resumed by itself; EN and FR, phone and desktop screenshots."""
    from edge.alarm_service import AlarmService

    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path), "device_id": "bed-7"}})
    clock = ManualClock()
    hub = Hub(cfg, clock=clock)
    service = AlarmService(hub, clock=clock, thermal_glob=None)
    service.install()
    store = store_mod.attach(hub)
    hub.set_health("camera", "ok", "picamera2")
    hub.set_health("microphone", "ok", "USB mic")

    def feed(label: str, distress: float, seconds: float) -> None:
        for _ in range(int(seconds * 2)):
            clock.t += 0.5
            state = bench_web.fake_state(label, distress, t=clock.t)
            service.on_state(state)
            hub.states.publish(state)

    feed("neutral", 0.1, 2)
    app = web.make_app(hub, store, cfg, auth=auth_mod.Authenticator(None, enabled=False))
    runner, port = await web.start_site(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with chromium(tmp_path) as cdp:
            page = await new_page(cdp, "en")
            await page.goto(base + "/")
            await page.wait("document.getElementById('conn').classList.contains('on')")
            await page.wait("document.getElementById('tile').className === 'tile lvl-calm'")
            feed("angry", 0.7, 7)                       # raised at medium
            await page.wait("!document.getElementById('alarm').hidden")
            await page.wait("document.getElementById('tile').className === 'tile lvl-medium' && "
                            "document.getElementById('tile-label').textContent === 'Angry'")
            assert await page.eval("document.getElementById('tile-level').textContent") == "Medium-priority alarm"
            await page.screenshot(ARTIFACTS / "browser_en_medium_alarm.png", width=390)
            await page.eval("document.querySelector('#pause-buttons button[data-minutes=\"15\"]').click()")
            await page.wait("!document.getElementById('pause-on').hidden")
            await page.wait("/^Monitoring paused by web: resumes in 1[45]:[0-5][0-9]$/"
                            ".test(document.getElementById('pause-line').textContent)")
            await page.wait("document.getElementById('tile').className === 'tile lvl-paused'")
            await page.wait("document.getElementById('ack').hidden")   # the pause acknowledged the alarm
            await page.wait("document.querySelector('#history tbody tr td:nth-child(2)').textContent"
                            " === 'Acknowledged'")
            kinds = await page.eval("[...document.querySelectorAll('#history tbody tr td:nth-child(2)')]"
                                    ".map(td => td.textContent)")
            assert kinds[:3] == ["Acknowledged", "Monitoring paused", "Raised"], kinds
            snap = hub.alarm_snapshot()
            assert snap["pause"]["by"] == "web" and not snap["audible"]
            await page.screenshot(ARTIFACTS / "browser_en_paused.png", width=390)
            await page.screenshot(ARTIFACTS / "browser_en_paused_desktop.png", width=1280)

            fr = await new_page(cdp, "fr")
            await fr.goto(base + "/")
            await fr.wait("document.documentElement.lang === 'fr' && !document.getElementById('pause-on').hidden")
            await fr.wait("/^Surveillance mise en pause par web : reprise dans 1[45]:[0-5][0-9]$/"
                          ".test(document.getElementById('pause-line').textContent)")
            assert await fr.eval("document.getElementById('resume').textContent") == "Reprendre la surveillance"
            await fr.screenshot(ARTIFACTS / "browser_fr_paused.png", width=390)

            feed("neutral", 0.1, 15 * 60)               # the care is over; the pause ends by itself
            await page.wait("document.getElementById('pause-on').hidden && "
                            "!document.getElementById('pause-off').hidden")
            await page.wait("[...document.querySelectorAll('#history tbody tr td:nth-child(2)')]"
                            ".some(td => td.textContent === 'Monitoring resumed')")
            await fr.wait("[...document.querySelectorAll('#history tbody tr td:nth-child(2)')]"
                          ".some(td => td.textContent === 'Surveillance reprise')")
            await fr.screenshot(ARTIFACTS / "browser_fr_resumed_desktop.png", width=1280)
            problems = [e["params"]["entry"] for e in cdp.events if e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"]["level"] == "error"]
            problems += [e["params"] for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"]
            assert not problems, problems
    finally:
        await runner.cleanup()


async def test_demo_story_page_shows_the_alarm_banner(tmp_path: Path) -> None:
    """The real demo path (story, pipeline, models, alarm, store, web) played on the media clock,
    then kept serving: the page shows the demo's alarm banner and its history."""
    import socket

    from edge import demo
    from edge.service import Service

    try:
        video, audio = demo.build_story(tmp_path / "story", *demo.find_demo_media())
    except demo.DemoError:
        pytest.skip("demo media not generated")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = demo.demo_config(config_mod.load(None), video, audio, str(tmp_path), "127.0.0.1", port,
                           realtime=False, loop=False)
    svc = Service(cfg, tasks=["alarm", "store", "web"], keep_serving=True)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        while svc.pipeline is None or not svc.pipeline.sources_ended.is_set():
            assert not task.done()
            await asyncio.sleep(0.1)
        token = auth_mod.load_or_create_token(auth_mod.token_path(tmp_path))
        async with chromium(tmp_path) as cdp:
            page = await new_page(cdp, "en")
            await page.goto(f"http://127.0.0.1:{port}/login")
            await page.wait("document.getElementById('token')")
            await page.eval("document.getElementById('token').focus()")
            await page.send("Input.insertText", {"text": token})
            await page.eval("document.getElementById('login-btn').click()")
            await page.wait("location.pathname === '/' && !document.getElementById('alarm').hidden")
            assert await page.eval("document.getElementById('alarm-cond').textContent") == "Distress"
            await page.wait("document.getElementById('tile').className === 'tile lvl-high'")
            await page.wait("[...document.querySelectorAll('#history tbody tr td:nth-child(2)')]"
                            ".some(td => td.textContent === 'Raised')")
            await page.screenshot(ARTIFACTS / "browser_demo_alarm.png", width=1280)
            await page.screenshot(ARTIFACTS / "browser_demo_alarm_phone.png", width=390)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
