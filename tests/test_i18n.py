"""The status page's strings: English and French carry the same keys, and every alarm event kind,
condition and label the service can emit has a translation in both."""

import json
from pathlib import Path

import pytest

from edge import alarm
from edge.events import EVENT_KINDS, AlarmEvent
from edge.labels import LABELS

ROOT = Path(__file__).resolve().parents[1]
STRINGS = json.loads((ROOT / "edge" / "outputs" / "static" / "i18n.json").read_text(encoding="utf-8"))


def test_same_keys_in_both_languages():
    assert set(STRINGS) == {"en", "fr"}
    assert set(STRINGS["en"]) == set(STRINGS["fr"])
    assert all(isinstance(v, str) and v.strip() for lang in STRINGS.values() for v in lang.values())


def test_every_event_kind_and_condition_is_translated():
    kinds = set(EVENT_KINDS)
    conditions = {alarm.DISTRESS, alarm.NO_PATIENT, *alarm.TECHNICAL_CONDITIONS}
    for lang, strings in STRINGS.items():
        missing = sorted(({f"kind_{k}" for k in kinds} | {f"cond_{c}" for c in conditions}) - set(strings))
        assert not missing, f"{lang}: no string for {missing}"


def test_every_label_is_translated():
    # the page looks labels up as 'label_<name>' (app.js labelText), plus 'unknown' and 'none'
    wanted = {f"label_{name}" for name in (*LABELS, "unknown", "none")}
    for lang, strings in STRINGS.items():
        missing = sorted(wanted - set(strings))
        assert not missing, f"{lang}: no string for {missing}"


def test_unknown_event_kind_is_refused():
    with pytest.raises(ValueError, match="EVENT_KINDS"):
        AlarmEvent(kind="exploded", condition="distress", priority="high")
