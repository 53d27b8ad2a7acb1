"""Synthetic ML traffic with injected incidents: the data behind `sloguard generate` and the demo.

A scenario is a few hours of a model's three input streams (DESIGN.md, "Contracts"):
`ml.inference`, `ml.labels` and `ml.features`, healthy except for a known list of incidents. Each
`Incident` says which SLOs should alert, with which rule, for which segment and how soon, so
replays and end-to-end tests can check detection against ground truth. The segment
`region=apac` is the control: only whole-model incidents (a silent model, a burst of rejected
messages) ever touch it. About 10 % of requests are served by a canary version (`variant:
canary`); the fraud scenario's first incident is a canary regression (the canary fails a quarter
of its requests outside the control region), which a rollout controller should roll back, while
the recommender's canary stays as healthy as its stable version.

Columns are drawn with numpy from one seeded generator and serialised with orjson in chunks, so
the same arguments always give the same bytes and a million events take seconds. Time comes only
from the arguments; nothing here reads the clock. Only `write_scenario` does I/O.

Healthy traffic is calibrated against the example configs: each ratio SLO's normal bad rate is at
most about a fifth of its error budget, and each incident is long and strong enough for the
SRE-workbook `fast-burn` rule (burn >= 14.4 over 1 h and 5 m, 30-day window) to fire. For a 95 %
objective that needs >= 72 % bad events over an hour, hence the 55-minute recsys latency and
staleness incidents.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from sloguard.core.synth.contract import CHUNK, DEFAULT_DURATION_S, DEFAULT_START, FILES, Scenario
from sloguard.core.synth.plan import ScenarioPlan

# --- scenario definitions -------------------------------------------------------------------


# --- helpers --------------------------------------------------------------------------------


# --- the plan: every column of a scenario, serialised on demand ------------------------------


# --- public entry points --------------------------------------------------------------------


def plan(
    scenario: str,
    events: int = 300_000,
    seed: int = 7,
    start: float = DEFAULT_START,
    duration_s: float = DEFAULT_DURATION_S,
    chunk_size: int = CHUNK,
    healthy: bool = False,
) -> ScenarioPlan:
    """Draw a scenario's columns without serialising them (for streaming large scenarios).

    `chunk_size` (lines per chunk) changes memory use only, never the bytes. `healthy` leaves the
    incidents out: known-good history for `sloguard baseline`.
    """
    return ScenarioPlan(scenario, events, seed, start, duration_s, chunk_size, healthy)


def generate(
    scenario: str,
    events: int = 300_000,
    seed: int = 7,
    start: float = DEFAULT_START,
    duration_s: float = DEFAULT_DURATION_S,
) -> Scenario:
    """Generate `scenario` (fraud | recsys): `events` healthy inference events plus bad messages.

    The timeline needs at least `min_duration_s(scenario)` seconds (under 14 h for each); the
    default of 14 h fits both.
    """
    return plan(scenario, events, seed, start, duration_s).materialise()


def write_scenario(scenario: Scenario | ScenarioPlan, out_dir: Path) -> dict[str, Path]:
    """Write inference.jsonl, labels.jsonl, features.jsonl and manifest.json into `out_dir`.

    A `ScenarioPlan` is streamed chunk by chunk; both give the same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in FILES.items()}
    for kind in ("inference", "labels", "features"):
        with paths[kind].open("wb") as fh:
            if isinstance(scenario, ScenarioPlan):
                for _, lines in scenario.chunks(kind):
                    if lines:
                        fh.write(b"\n".join(lines) + b"\n")
            else:
                lines = getattr(scenario, kind)
                for a in range(0, len(lines), CHUNK):
                    fh.write(b"\n".join(lines[a : a + CHUNK]) + b"\n")
    paths["manifest"].write_bytes(orjson.dumps(scenario.manifest(), option=orjson.OPT_INDENT_2) + b"\n")
    return paths
