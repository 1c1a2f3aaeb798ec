"""`medtrack demo` tells the product's story: the real pipeline and models on the demo story,
played on the media clock (as fast as the CPU allows), raise a distress alarm within 90 s of
story time, escalate it unacknowledged, and the events survive for `medtrack events export`."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge import cli, demo
from edge import config as config_mod
from edge import store as store_mod
from edge.events import AlarmEvent
from edge.labels import LABELS
from edge.outputs import auth as auth_mod
from edge.outputs import web
from edge.service import Service

DISTRESS_LABELS = {"sad", "fear", "angry", "disgust"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    try:
        video, audio = demo.find_demo_media()
    except demo.DemoError:
        pytest.skip("demo media not generated")
    if not (config_mod.REPO_ROOT / "models_tflite" / "face_detection_short_range.tflite").exists():
        pytest.skip("face detector absent; run `python scripts/fetch_face_detector.py`")
    return demo.build_story(tmp_path_factory.mktemp("story"), video, audio)


def test_story_is_two_minutes_and_cached(story: tuple[Path, Path]) -> None:
    video, audio = story
    timeline = demo.story_timeline()
    assert [s["kind"] for s in timeline] == ["calm", "distress", "calm"] and timeline[-1]["end_s"] <= 120
    mtime = video.stat().st_mtime_ns
    again = demo.build_story(video.parent, *demo.find_demo_media())
    assert again == story and video.stat().st_mtime_ns == mtime    # built once, reused


async def test_demo_story_raises_escalates_and_shows_on_the_api(story: tuple[Path, Path], tmp_path: Path) -> None:
    video, audio = story
    cfg = demo.demo_config(config_mod.load(None), video, audio, str(tmp_path), "127.0.0.1", free_port(),
                           realtime=False, loop=False)
    svc = Service(cfg, tasks=["alarm", "store"], stop_when_sources_end=True)
    seen: list[tuple[float, AlarmEvent]] = []
    face_labels: list[str] = []
    distress_scene = demo.story_timeline()[1]

    async def watch() -> None:
        while svc.pipeline is None:
            await asyncio.sleep(0.01)
        events, states = svc.hub.events.subscribe(name="test"), svc.hub.states.subscribe(maxsize=4096, name="t")
        start = svc.clock()

        async def on_states() -> None:
            async for st in states:
                t = svc.clock() - start
                face = st.modalities.get("face", {})
                if distress_scene["start_s"] + 5 < t < distress_scene["end_s"] and face.get("live"):
                    face_labels.append(face.get("label"))
        task = asyncio.create_task(on_states())
        try:
            async for ev in events:
                seen.append((svc.clock() - start, ev))
        finally:
            task.cancel()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(svc.run(), 240)
    watcher.cancel()
    kinds = [(ev.kind, ev.condition) for _, ev in seen]
    assert ("raised", "distress") in kinds, kinds
    raised_at = next(t for t, ev in seen if ev.kind == "raised")
    assert distress_scene["start_s"] < raised_at < 90, raised_at
    escalated = [t for t, ev in seen if ev.kind == "escalated"]
    assert escalated and escalated[0] - raised_at <= demo.DEMO_ESCALATE_S + 5     # nobody acknowledged
    # the face itself reads distress in that scene, not only the voice
    assert face_labels and sum(lab in DISTRESS_LABELS for lab in face_labels) > len(face_labels) / 2, face_labels
    assert set(face_labels) <= set(LABELS)

    # what the page's API shows afterwards, from the events the demo kept
    store = store_mod.EventStore(store_mod.store_path(tmp_path), readonly=True)
    auth = auth_mod.Authenticator(auth_mod.token_path(tmp_path))
    client = TestClient(TestServer(web.make_app(svc.hub, store, cfg, auth=auth)))
    await client.start_server()
    try:
        bearer = {"Authorization": f"Bearer {auth.token}"}
        status = await (await client.get("/api/status", headers=bearer)).json()
        assert status["alarm"]["active"] and status["alarm"]["condition"] == "distress"
        assert status["alarm"]["priority"] == "high"
        events = (await (await client.get("/api/events", headers=bearer)).json())["events"]
        assert {"raised", "escalated"} <= {e["kind"] for e in events}
    finally:
        await client.close()
        store.close()


def test_demo_command_prints_how_to_act_and_a_summary_and_keeps_its_events(
        story: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")   # what the demo sets; undone after the test
    state = tmp_path / "xdg" / "medtrack-demo"
    assert demo.demo_state_dir() == state
    assert cli.main(["demo", "--once", "--fast", "--port", str(free_port())]) == 0
    out = capsys.readouterr().out
    assert "/api/acknowledge" in out and "Authorization: Bearer" in out and "/api/pause" in out
    assert "Alarms raised: 1 (distress); escalated: 1; acknowledged: 0." in out
    assert f"medtrack events export --state-dir {state}" in out
    assert (state / "events.db").exists() and (state / "story" / "story.avi").exists()
    # the export the summary names finds them; the default one says where they are
    assert cli.main(["events", "export", "--state-dir", str(state)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {"raised", "escalated"} <= {r["kind"] for r in rows}
    missing = tmp_path / "nowhere.toml"
    missing.write_text(f'[service]\nstate_dir = "{tmp_path / "empty"}"\n')
    assert cli.main(["events", "export", "--config", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"medtrack events export --state-dir {state}" in err and err.count("\n") == 1
