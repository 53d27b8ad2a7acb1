"""Expected-confusion and reconstruction-error sums merge by addition: any split into shards or
batches gives the whole's summary, and the evaluator's outputs do not depend on the shard count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from factories import T0
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quality_slos import run_mixed
from test_sharding import _outputs

from sloguard.core.evaluate.evaluator import ModelEvaluator
from sloguard.core.evaluate.summary import fold_cells, segmentations
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.yamlfile import load_yaml
from sloguard.core.stats.cbpe import expected_cells
from sloguard.core.stats.multivariate_drift import PcaReference, error_cells
from sloguard.core.synth.depth_scenario import generate_depth

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ml-depth.yaml"
_PCA = PcaReference.fit(("a", "b"), np.random.default_rng(0).multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 300))


def _totals(rows_list) -> dict:
    out: dict = {}
    for r in [x for x in rows_list if x is not None]:
        for j in range(len(r)):
            key = (int(r.key[j]), float(r.start[j]))
            out[key] = out.get(key, 0) + r.rows[j]
    return {k: np.round(v, 9).tolist() for k, v in out.items() if np.round(v, 9).any()}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_shards_of_expected_and_error_cells_sum_to_the_whole(n: int, parts: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts = T0 + rng.uniform(0, 900, n)
    segs = segmentations([rng.integers(-1, 3, n)], [1], n)
    probability = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    answered = rng.random(n) < 0.9
    errors = _PCA.errors(rng.normal(size=(n, 2)))
    cells = expected_cells(0, rng.random(n) < 0.3, probability, answered) + error_cells(4, errors, answered)
    shard = rng.integers(0, parts, n)
    whole = fold_cells(segs, ts, cells, 6, 300)
    pieces = []
    for s in range(parts):
        mine = np.flatnonzero(shard == s)
        if mine.size:
            pieces.append(fold_cells([(c[mine], o) for c, o in segs], ts[mine],
                                     [(c[mine], None if w is None else w[mine]) for c, w in cells], 6, 300))
    assert _totals(pieces) == _totals([whole])


def _depth(tmp_path: Path, lo: float, hi: float) -> tuple:
    """The example config with its model named `m` (as the shared helpers expect), and the ml-depth
    scenario's inference and labels between `lo` and `hi`."""
    paths = generate_depth(tmp_path, seed=11, rate=3.0)
    streams = {k: [{**e, "model": "m"} for e in map(orjson.loads, paths[k].read_bytes().splitlines())
                   if lo <= e["ts"] < hi] for k in ("inference", "labels")}
    data = load_yaml(EXAMPLE.read_text())
    data["models"] = {"m": data["models"]["fraud"]}
    data["slos"] = [{**s, "model": "m"} for s in data["slos"]]
    return parse_config(data, base_dir=EXAMPLE.parent), streams


def test_outputs_are_the_same_for_any_shards_and_batches(tmp_path: Path) -> None:
    config, streams = _depth(tmp_path, T0 + 3600, T0 + 3 * 3600)  # the score shift, and the clean hour before
    one = _outputs(config, streams, 1, 2000)
    assert one == _outputs(config, streams, 5, 777)
    assert any(k == "alert" and m.slo == "fraud-estimated-precision" for k, m in one)
    assert any(k == "budget" and m.slo == "fraud-joint-drift" and m.value for k, m in one)


def test_a_snapshot_mid_stream_continues_as_if_never_stopped(tmp_path: Path) -> None:
    """Estimated-quality, estimation-error (a waiting prediction keeps its calibrated probability)
    and joint-drift state survive a snapshot: the restored run writes what the uninterrupted one does."""
    config, streams = _depth(tmp_path, T0 + 3.5 * 3600, T0 + 5 * 3600)  # into the intersection gap
    preds, labels = streams["inference"], streams["labels"]
    whole, _ = run_mixed(config, preds, labels, size=500)
    cut = T0 + 4.25 * 3600
    first, ev = run_mixed(config, [e for e in preds if e["ts"] < cut], [e for e in labels if e["ts"] < cut],
                          size=500, finish=False)
    restored = ModelEvaluator.from_snapshot(config, "m", ev.snapshot())
    rest, _ = run_mixed(config, [e for e in preds if e["ts"] >= cut], [e for e in labels if e["ts"] >= cut],
                        size=500, evaluator=restored)
    kept = ("budget", "alert")
    assert [o for o in first + rest if o[0] in kept] == [o for o in whole if o[0] in kept]
    assert any(k == "alert" and m.slo == "fraud-estimate-error" for k, m in whole)
