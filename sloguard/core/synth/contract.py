"""What a synthetic scenario is: its files, its incidents and the constants its parts share.

The incidents are the ground truth replays and end-to-end tests are scored against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SCENARIOS = ("fraud", "recsys")


DEFAULT_START = 1767225600.0  # 2026-01-01T00:00:00Z


DEFAULT_DURATION_S = 14 * 3600.0


MAX_MESSAGE_BYTES = 65_536


CONTROL = {"region": "apac"}


BAD_KINDS = (
    "malformed_json",
    "wrong_types",
    "nan_token",
    "missing_fields",
    "absurd_timestamp",
    "oversized",
    "duplicate_id",
)


FILES = {
    "inference": "inference.jsonl",
    "labels": "labels.jsonl",
    "features": "features.jsonl",
    "manifest": "manifest.json",
}


LEAD_S = 80 * 60.0  # clean traffic before the first incident: hourly SLIs report, canaries get judged


MIN_GAP_S = 45 * 60.0  # clean traffic between incidents


MIN_TAIL_S = 20 * 60.0  # clean traffic after the last one


CHUNK = 65_536


RFC_SHARE = 0.10  # share of timestamps written as RFC 3339 strings


CANARY_SHARE = 0.10


UNLABELLED_SHARE = 0.10


MISSING_SHARE = 0.0005  # healthy share of feature values null or absent


BURST_RATE = 0.15  # bad messages per good event of the model during a malformed burst


BAD_WEIGHTS = (0.25, 0.20, 0.10, 0.15, 0.10, 0.05, 0.15)  # in BAD_KINDS order


NAN_MARK = "__sloguard_nan__"


ID_MULT = 0x9E3779B97F4B  # odd: i -> (i * ID_MULT + offset) mod 2**48 is a bijection


ID_MASK = (1 << 48) - 1


STATUS_NAMES = np.array(["ok", "error", "timeout"], dtype=object)


VARIANT_NAMES = np.array(["stable", "canary"], dtype=object)


@dataclass(frozen=True)
class Incident:
    """One injected incident and the alert it should raise, as written in manifest.json."""

    name: str
    kind: str  # error_outage, latency_spike, stale_features, missing_features, malformed_burst,
    # silent_model, canary_regression, quality_drop, ctr_drop, feature_drift, fairness_regression
    model: str
    dimension: str  # infrastructure | data | quality | drift | fairness
    slos: tuple[str, ...]  # SLO names expected to alert
    rule: str  # expected alert rule: fast-burn | no-data
    segment: dict[str, str]  # {} (whole model), {"region": ...} or {"variant": "canary"}
    start: float  # epoch seconds
    end: float
    detect_within_s: float  # generous bound on event-time detection delay after `start`
    description: str = ""
    bad_messages: dict[str, int] = field(default_factory=dict)  # malformed_burst: count by kind
    feature: str = ""  # feature_drift: the feature the drift alert should name
    group: dict[str, str] = field(default_factory=dict)  # fairness_regression: the worst group, e.g. atm


@dataclass
class Scenario:
    """A generated scenario held in memory: one JSON line (bytes, no newline) per message."""

    name: str
    inference: list[bytes]
    labels: list[bytes]
    features: list[bytes]
    incidents: list[Incident]
    control: dict[str, str]
    seed: int = 0
    events: int = 0
    start: float = DEFAULT_START
    end: float = DEFAULT_START + DEFAULT_DURATION_S
    bad_messages: dict[str, int] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The manifest.json object."""
        return manifest_of(
            self.name,
            self.seed,
            self.events,
            self.start,
            self.end,
            self.incidents,
            self.bad_messages,
            {"inference": len(self.inference), "labels": len(self.labels), "features": len(self.features)},
        )


def incidents_from_manifest(manifest: dict[str, Any]) -> list[Incident]:
    """The incidents of a loaded manifest.json, as `Incident` objects."""
    out = []
    for d in manifest["incidents"]:
        d = dict(d)
        d["slos"] = tuple(d["slos"])
        out.append(Incident(**d))
    return out


def manifest_of(
    name: str,
    seed: int,
    events: int,
    start: float,
    end: float,
    incidents: list[Incident],
    bad: dict[str, int],
    counts: dict[str, int],
) -> dict:
    return {
        "scenario": name,
        "seed": seed,
        "events": events,
        "start": start,
        "end": end,
        "control": dict(CONTROL),
        "incidents": [asdict(i) for i in incidents],
        "bad_messages": dict(bad),
        "counts": counts,
    }
