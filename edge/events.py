"""State and event records that flow from the pipeline to every output (GPIO, store, web, MQTT)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_now_iso() -> str:
    """Wall-clock UTC time, ISO-8601 with milliseconds: the only time format stored or served."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_iso(epoch_s: float) -> str:
    """An epoch time (a wall clock's reading) in the format of :func:`utc_now_iso`."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModalityReading:
    """One modality's latest classification: probabilities over the canonical labels."""

    modality: str                 # "face" or "voice"
    t: float                      # monotonic seconds when the input was captured
    probs: tuple[float, ...]      # canonical order (edge.labels.LABELS)
    confidence: float             # max probability (face) or speech-weighted confidence (voice)
    detail: dict[str, Any] = field(default_factory=dict)  # faces seen, speech ratio, latency ...


@dataclass(frozen=True)
class EmotionState:
    """Fused emotional state at one moment."""

    t: float                      # monotonic seconds
    time: str                     # UTC ISO-8601
    probs: tuple[float, ...]      # canonical order
    label: str
    confidence: float
    distress: float               # 0..1, see [fusion] distress_weights
    modalities: dict[str, dict[str, Any]]  # per-modality detail: live, weight, label, probs, age_s
    live: tuple[str, ...]         # modalities that contributed ("face", "voice")
    sounds: dict[str, Any] = field(default_factory=dict)  # what the microphone hears (SoundMonitor.summary)

    def to_dict(self) -> dict[str, Any]:
        from edge.labels import LABELS

        d = asdict(self)
        d["probs"] = {name: round(p, 4) for name, p in zip(LABELS, self.probs, strict=True)}
        d["live"] = list(self.live)
        d.pop("t")
        return d


EVENT_KINDS: tuple[str, ...] = (
    "raised", "escalated", "acknowledged", "silenced", "resounded", "cleared", "suppressed",
    "technical", "technical_cleared", "restored", "paused", "resumed",
)
PRIORITIES: tuple[str, ...] = ("high", "medium", "low", "none")


@dataclass(frozen=True)
class AlarmEvent:
    """One alarm transition; stored before it is announced, published with a unique id."""

    kind: str                     # one of EVENT_KINDS
    condition: str                # monitoring (paused/resumed) | distress | vocal_distress | no_patient | camera_lost | mic_lost | model_failure | overheat | stalled | store_failure
    priority: str                 # one of PRIORITIES
    time: str = field(default_factory=utc_now_iso)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    by: str | None = None         # who acknowledged: "button", "web:<user>", "mqtt:<client>"
    distress: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown alarm event kind {self.kind!r}; add it to EVENT_KINDS and the page strings")
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown alarm priority {self.priority!r}; expected one of {PRIORITIES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
