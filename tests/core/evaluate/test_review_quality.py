"""Review of the quality / drift / fairness core: label join, per-slice rings, re-judging, baselines.

The first group states behaviours that are broken today (each test fails until fixed); the second
pins behaviours verified during the review that no other test covers.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from factories import T0, event, make_config, of, run, spec_of
from test_drift_slos import drift_config
from test_drift_slos import traffic as drift_traffic
from test_labels import LabelJoin, predict
from test_labels import labels as label_columns
from test_quality_slos import confusion, last, quality_config, run_mixed, traffic

from sloguard.core.evaluate.evaluator import MAX_VALUES_PER_ATTRIBUTE, ModelEvaluator, Output, split_by_model
from sloguard.core.messages.batch import as_numbers, parse_batch
from sloguard.core.messages.events import RawBatch
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.stats.drift_bins import numeric_reference


def prediction(i: int | str, ts: float, p: int = 1, region: str = "eu", **kw: Any) -> dict[str, Any]:
    return {
        "id": f"p{i}",
        "model": "m",
        "version": "v1",
        "ts": ts,
        "status": "ok",
        "latency_ms": 1.0,
        "prediction": p,
        "score": 0.9 if p else 0.1,
        "segment": {"region": region},
        "features": {"a": 1.0, "b": "x"},
        **kw,
    }


class Feeder:
    """Feeds hand-ordered batches (kind, events) to one evaluator, as a stream would deliver them."""

    def __init__(self, config: Any) -> None:
        self.ev = ModelEvaluator(config, "m")
        self.spec = spec_of(config)
        self.out: list[Output] = []

    def __call__(self, kind: str, events: list[dict[str, Any]]) -> None:
        rb = RawBatch(kind, f"ml.{kind}", 0, list(range(len(events))), [orjson.dumps(e) for e in events], source=kind)
        parsed = parse_batch(rb, self.spec)
        self.out += [("dead_letter", d) for d in parsed.dead_letters]
        for _, mb in split_by_model(parsed, ["m"]):
            self.out += self.ev.process(mb)


# ---- bugs: these fail today ------------------------------------------------------------------------


def test_as_numbers_reads_a_value_the_same_whatever_else_is_in_the_batch() -> None:
    """batch.as_numbers: "3.5" is 3.5 when every value of the batch converts, NaN when one does not.
    Its docstring says strings are not numbers; either way a value must not depend on its neighbours."""
    alone = as_numbers(["3.5", 2.0])[0]
    mixed = as_numbers(["3.5", "n/a"])[0]
    assert (np.isnan(alone) and np.isnan(mixed)) or alone == mixed


def test_a_numeric_feature_sent_as_strings_counts_the_same_in_every_batch(tmp_path: Path) -> None:
    """The same drift slice counts 300 values of `a` or none, depending on one other event's value."""
    rng = np.random.default_rng(21)
    config = drift_config(tmp_path, rng, target=0.95)
    events = drift_traffic(rng, T0, T0 + 600, 1.0)
    for e in events:
        e["features"]["a"] = str(round(e["features"]["a"], 3))
    odd = [dict(e, features=dict(e["features"])) for e in events]
    odd[-1]["features"]["a"] = "n/a"  # one unreadable value, in the slice that is never judged
    n = []
    for evs in (events, odd):
        out, _ = run(config, evs, size=1000)
        drift = of(out, "budget", slo="drift", segment={})[-1].drift
        n.append(next(d["n"] for d in drift if d["feature"] == "a"))
    assert n[0] == n[1]


def test_a_label_whose_slice_left_the_ring_is_not_lost_silently() -> None:
    """A label stamped 100 s after its prediction (well within the 1 h label delay) but read out of
    order, once event time has moved 1h40 on: the join still finds the prediction (its batch also
    holds a newer one, so it has not expired) and counts the pair as joined, but the slice's bucket
    was released from the labelled ring, so `Windows.add` drops it; `add_cells` still reports the
    bucket as hit. The slice is never judged, no dead letter, no counter: 100 labels vanish."""
    config = quality_config([{"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.9}], label_delay="1h")
    feed = Feeder(config)
    # 100 predictions in the slice [T0, T0 + 5m) and, in the same batch, one 50 minutes later
    feed("inference", [prediction(i, T0 + 3 * i) for i in range(100)] + [prediction(999, T0 + 3000)])
    for k in range(1, 21):  # unlabelled traffic up to T0 + 6000
        feed("inference", [prediction(1000 * k + j, T0 + 300 * k + 3 * j, 0) for j in range(100)])
    # the 100 labels, every one wrong, stamped 100 s after their predictions, read now
    feed("labels", [{"id": f"p{i}", "model": "m", "label": 0, "ts": T0 + 3 * i + 100} for i in range(100)])
    feed("inference", [prediction(50_000 + j, T0 + 6300 + 3 * j, 0) for j in range(200)])
    feed.out += feed.ev.finish()
    final = of(feed.out, "budget", slo="q", segment={})[-1]
    dead = [d for d in of(feed.out, "dead_letter") if d.topic == "ml.labels"]
    assert final.total - final.good >= 1 or len(dead) == 100, (final, feed.ev.label_report())


def test_a_prediction_whose_label_came_too_late_is_still_accounted_for() -> None:
    """labels.py `_take`: a label later than the delay takes its prediction out of the waiting set,
    but the prediction is counted neither as joined nor as expired: it vanishes from the counters
    (`joined + expired + evicted + pending` no longer equals the predictions received)."""
    join = LabelJoin(delay_s=100, cap=100, hold_s=60)
    predict(join, ["a", "b"], [0, 0])
    joined, rejected = join.add_labels(label_columns(["a"], [500]))
    assert len(joined) == 0 and "beyond the label delay" in rejected[0][1]
    join.expire(1000)
    c = join.counters
    assert c["joined"] + c["late"] + c["expired"] + c["evicted"] + join.pending == 2, join.report()
    assert c["late"] == 1


def test_labels_still_held_at_the_end_of_a_replay_are_dead_lettered() -> None:
    """finish() expires held labels only up to `hold_s` before the last event time: a label for an
    unknown id near the end of the input stays held in the state, never dead-lettered or reported."""
    rng = np.random.default_rng(22)
    preds, labels = traffic(T0, T0 + 1200, 1.0, rng, label_delay=30)
    labels.append({"id": "ghost-end", "model": "m", "label": 1, "ts": T0 + 1229})
    config = quality_config([{"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.5}])
    out, ev = run_mixed(config, preds, labels)
    assert [d for d in of(out, "dead_letter") if "ghost-end" in d.error]
    assert ev.label_report()["held_labels"] == 0


def test_requests_that_failed_do_not_count_as_negative_predictions_in_quality() -> None:
    """A request with status error has no prediction and no score; its label still joins and the pair
    counts as a predicted negative (fn / tn). A model that is right on every answered request then
    reads recall 0.49 when half the requests fail: an outage burns the quality (and fairness)
    budgets as well as availability, while regression SLIs leave such pairs out."""
    rng = np.random.default_rng(23)
    preds, labels = traffic(T0, T0 + 600, 1.0, rng, accuracy=1.0)
    for k, p in enumerate(preds):
        if k % 2:
            p["status"] = "error"
            del p["prediction"], p["score"]
    config = quality_config(
        [
            {"name": "recall", "sli": {"recall": {"positive": 1}}, "objective": 0.9},
            {"name": "recall_t", "sli": {"recall": {"positive": 1, "threshold": 0.5}}, "objective": 0.9},
        ]
    )
    out, _ = run_mixed(config, preds, labels)
    assert last(out, "recall", segment={}).value == 1.0
    assert last(out, "recall_t", segment={}).value == 1.0


def test_a_drift_parameter_that_cannot_work_fails_validation_not_the_flow(tmp_path: Path) -> None:
    """`large_sample: 0.5` passes config validation (a positive number), then `int(0.5) == 0` makes
    DriftRule raise ValueError at the first judged slice: the evaluator crashes mid-stream."""
    rng = np.random.default_rng(24)
    try:
        config = drift_config(tmp_path, rng, target=0.95, large_sample=0.5)
    except ConfigError as e:
        assert "large_sample" in str(e)
        return
    run(config, drift_traffic(rng, T0, T0 + 900, 1.0))  # must not raise


@pytest.mark.parametrize(
    "ref",
    [
        {"kind": "numeric"},  # no edges: KeyError in ModelEvaluator
        {"kind": "numeric", "edges": [1.0, 0.0], "probs": [0.5, 0.3, 0.2], "n": 10, "lo": 0, "hi": 1, "std": 1},
        {"kind": "categorical", "categories": ["x"], "probs": [0.5, 0.6], "n": 10},
    ],
)
def test_a_malformed_reference_in_the_baseline_is_a_config_error(tmp_path: Path, ref: dict) -> None:
    """models_section._references checks only `kind`; a broken reference passes `validate` and the evaluator
    then crashes with KeyError / ValueError instead of a ConfigError naming the baseline."""
    (tmp_path / "b.json").write_bytes(orjson.dumps({"metrics": {}, "reference": {"a": ref}}))
    data = {
        "evaluation_interval": "1m",
        "models": {"m": {"segments": ["region"], "features": ["a"], "baseline": "b.json"}},
        "slos": [
            {
                "name": "d",
                "model": "m",
                "dimension": "drift",
                "sli": {"drift": {"method": "wasserstein"}},
                "window": "30d",
                "budgeting": {"timeslices": "5m", "min_samples": 10, "target": 0.99},
            }
        ],
    }
    with pytest.raises(ConfigError, match="reference"):
        config = parse_config(data, base_dir=tmp_path)
        ModelEvaluator(config, "m")


def test_a_high_cardinality_segment_does_not_grow_the_state_without_bound() -> None:
    """evaluator._code_for memoises every value past MAX_VALUES_PER_ATTRIBUTE in `state["codes"]`
    (pointing at "(other)"), so a user id used as a segment grows memory and every snapshot by one
    dict entry per distinct value, forever."""
    config = make_config([{"name": "a", "dimension": "infrastructure", "sli": "availability", "objective": 0.99}])
    sizes = []
    for distinct in (False, True):  # 20k events over 300 region values, or over 20k distinct ones
        events = [event(k, T0 + k * 0.01, region=f"r{k if distinct else k % 300}") for k in range(20_000)]
        # an hour later (the dedupe memory has forgotten the first ids): the same 1000 events in both runs
        events += [event(100_000 + k, T0 + 3600 + k * 0.01, region=f"x{k}") for k in range(1_000)]
        _, ev = run(config, events, size=5_000)
        assert len(ev.state.groups["region"]) == MAX_VALUES_PER_ATTRIBUTE + 1  # the keys are capped
        sizes.append(len(pickle.dumps(ev.snapshot())))
    assert sizes[1] - sizes[0] < 50_000, sizes  # today: ~206 kB more, one `codes` entry per value


# ---- verified behaviours not covered elsewhere ---------------------------------------------------------


def test_a_slice_whose_verdict_flips_twice_is_counted_once_with_its_last_verdict() -> None:
    preds = [prediction(i, T0 + i) for i in range(300)]  # slice [T0, T0 + 5m), all predicted positive
    preds += [prediction(10_000 + k, T0 + 300 + 10 * k, 0) for k in range(210)]  # keeps event time moving
    labels = [{"id": f"p{i}", "model": "m", "label": 1, "ts": T0 + 400} for i in range(100)]  # good: 1.0
    labels += [{"id": f"p{i}", "model": "m", "label": 0, "ts": T0 + 1000} for i in range(100, 200)]  # bad: 0.5
    labels += [{"id": f"p{i}", "model": "m", "label": 1, "ts": T0 + 1600} for i in range(200, 300)]  # good: 0.67
    # judged on whatever labels have come (the default waits for 40 % of them, past the first verdict)
    config = quality_config([{"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.6}],
                            label_coverage={"min_share": 0})
    out, _ = run_mixed(config, preds, labels, size=10)
    seen = [(e.good, e.total - e.good) for e in of(out, "budget", slo="q", segment={}) if e.total]
    assert (1.0, 0.0) in seen and (0.0, 1.0) in seen  # it was good, then bad ...
    assert seen[-1] == (1.0, 0.0)  # ... and ends good, counted once
    assert seen.index((0.0, 1.0)) > seen.index((1.0, 0.0))
    assert all(g >= 0 and b >= 0 for g, b in seen)
    assert last(out, "q", segment={}).value == pytest.approx(2 / 3, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_late_labels_in_random_order_end_with_the_verdicts_of_prompt_labels(seed: int) -> None:
    """Labels 0-50 minutes late (random per label, random batch sizes) re-judge slices until the
    budget holds exactly what it holds when every label comes one second after its prediction."""
    rng = np.random.default_rng(seed)
    preds, labels = traffic(T0, T0 + 7200, 0.5, rng, accuracy=0.85, regions=("eu", "us", "apac"), label_share=0.9)
    tail, _ = traffic(T0 + 7200, T0 + 10_800, 0.05, rng, label_share=0.0, id_prefix="t")
    late = [
        dict(lab, ts=lab["ts"] - 600 + float(d))
        for lab, d in zip(labels, rng.uniform(0, 3000, len(labels)), strict=True)
    ]
    prompt = [dict(lab, ts=lab["ts"] - 600 + 1) for lab in labels]
    config = quality_config(
        [
            {"name": "acc", "sli": {"accuracy": {"positive": 1}}, "objective": 0.85},
            {
                "name": "rec",
                "sli": {"recall": {"positive": 1}},
                "objective": 0.85,
                "budgeting": {"timeslices": "10m", "min_samples": 10, "target": 0.99},
            },
            {"name": "fair", "dimension": "fairness", "sli": {"fpr_gap": {}}, "objective": 0.1},
        ],
        label_delay="1h",
        fairness={"attribute": "region", "min_support": 5},
    )
    size = int(rng.integers(5, 80))
    a, _ = run_mixed(config, preds + tail, late, size=size)
    b, _ = run_mixed(config, preds + tail, prompt, size=size)
    for slo, segments in (("acc", ({}, {"region": "eu"})), ("rec", ({}, {"region": "us"})), ("fair", ({},))):
        for seg in segments:
            ea, eb = last(a, slo, segment=seg), last(b, slo, segment=seg)
            assert (ea.good, ea.total, ea.slices_unjudged) == (eb.good, eb.total, eb.slices_unjudged)


def test_a_restored_snapshot_with_held_labels_and_fairness_continues_identically() -> None:
    rng = np.random.default_rng(25)
    p1, l1 = traffic(T0, T0 + 2400, 1.0, rng, label_delay=-20, id_prefix="a")  # labels before predictions
    p2, l2 = traffic(T0, T0 + 2400, 1.0, rng, label_delay=900, id_prefix="b", accuracy=0.6)
    preds, labels = p1 + p2, [*l1, *l2, {"id": "ghost", "model": "m", "label": 1, "ts": T0 + 1190}]
    config = quality_config(
        [
            {"name": "q", "sli": {"precision": {"positive": 1}}, "objective": 0.9},
            {"name": "f", "dimension": "fairness", "sli": {"tpr_gap": {}}, "objective": 0.2},
        ],
        fairness={"attribute": "region", "min_support": 5},
    )
    cut = T0 + 1200
    _, ev = run_mixed(config, [p for p in preds if p["ts"] < cut], [x for x in labels if x["ts"] < cut], finish=False)
    report = ev.label_report()
    assert report["pending"] > 0 and report["held_labels"] > 0
    restored = ModelEvaluator.from_snapshot(config, "m", pickle.loads(pickle.dumps(ev.snapshot())))
    rest_p, rest_l = [p for p in preds if p["ts"] >= cut], [x for x in labels if x["ts"] >= cut]
    a, _ = run_mixed(config, rest_p, rest_l, evaluator=ev, size=97)
    b, _ = run_mixed(config, rest_p, rest_l, evaluator=restored, size=97)
    assert a == b and of(a, "budget", slo="f")


def test_labelled_slos_of_different_slice_widths_share_one_ring_and_match_the_formulas() -> None:
    rng = np.random.default_rng(26)
    preds, labels = traffic(T0, T0 + 3600, 2.0, rng, accuracy=0.8, label_delay=700, label_share=0.9)

    def slo(name: str, sli: str, width: str) -> dict:
        return {
            "name": name,
            "sli": {sli: {"positive": 1}},
            "objective": 0.01,
            "budgeting": {"timeslices": width, "min_samples": 5, "target": 0.99},
        }

    config = quality_config([slo("p10", "precision", "10m"), slo("r15", "recall", "15m"), slo("a5", "accuracy", "5m")])
    out, ev = run_mixed(config, preds, labels)
    assert ev.plan.slices.labelled_base_s == 300
    formulas = {
        "p10": (600, lambda c: c["tp"] / (c["tp"] + c["fp"])),
        "r15": (900, lambda c: c["tp"] / (c["tp"] + c["fn"])),
        "a5": (300, lambda c: (c["tp"] + c["tn"]) / sum(c.values())),
    }
    for name, (width, f) in formulas.items():
        for region in (None, "eu"):
            e = last(out, name, segment={} if region is None else {"region": region})
            assert e.value == pytest.approx(
                f(confusion(preds, labels, T0 + 3600 - width, T0 + 3600, region)), abs=1e-6
            )
            assert e.good == 3600 // width and e.slices_unjudged == 0


def test_a_label_stamped_before_its_prediction_is_held_and_counts_in_the_predictions_slice() -> None:
    rng = np.random.default_rng(27)
    preds, labels = traffic(T0, T0 + 1800, 1.0, rng, label_delay=-30)
    config = quality_config([{"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.5}])
    out, ev = run_mixed(config, preds, labels)
    assert not of(out, "dead_letter")
    assert ev.label_report()["joined"] == len(labels)
    c = confusion(preds, labels, T0 + 1500, T0 + 1800)
    assert last(out, "q", segment={}).value == pytest.approx((c["tp"] + c["tn"]) / sum(c.values()), abs=1e-6)


def test_fairness_leaves_out_events_without_the_attribute() -> None:
    rng = np.random.default_rng(28)
    preds, labels = traffic(T0, T0 + 1800, 3.0, rng, regions=("eu", "us"), accuracy=0.9)
    for p in preds[::5]:
        p["segment"] = {}
    config = quality_config(
        [{"name": "fair", "dimension": "fairness", "sli": {"fpr_gap": {"positive": 1}}, "objective": 0.1}],
        fairness={"attribute": "region", "min_support": 30},
    )
    out, _ = run_mixed(config, preds, labels)
    groups = {g["group"]: g for g in last(out, "fair", segment={}).fairness["groups"]}
    assert set(groups) == {"eu", "us"}
    truth = {lab["id"]: lab["label"] for lab in labels}
    for region in ("eu", "us"):
        negatives = [
            p
            for p in preds
            if T0 + 1500 <= p["ts"] < T0 + 1800 and p["segment"].get("region") == region and truth.get(p["id"]) == 0
        ]
        assert groups[region]["support"] == len(negatives)


def test_drift_judges_a_mostly_missing_feature_on_the_values_present(tmp_path: Path) -> None:
    rng = np.random.default_rng(29)
    config = drift_config(tmp_path, rng, target=0.95)
    events = drift_traffic(rng, T0, T0 + 900, 1.0)
    for k, e in enumerate(events):
        if k % 10:
            del e["features"]["a"]
        if k % 13 == 0:
            e["features"]["b"] = None
    out, _ = run(config, events)
    drift = {d["feature"]: d for d in of(out, "budget", slo="drift", segment={})[-1].drift}
    newest = [e for k, e in enumerate(events) if T0 + 300 <= e["ts"] < T0 + 600]
    assert drift["a"]["n"] == sum("a" in e["features"] for e in newest) == 30
    assert drift["b"]["n"] == sum(e["features"]["b"] is not None for e in newest)


def _slo_config(slo: dict, **model: Any) -> dict:
    return {
        "evaluation_interval": "1m",
        "models": {"m": {"segments": ["region"], "features": ["a"], **model}},
        "slos": [
            {"name": "s", "model": "m", "window": "30d", "budgeting": {"timeslices": "5m", "target": 0.99}, **slo}
        ],
    }


@pytest.mark.parametrize(
    ("slo", "model", "message"),
    [
        (
            {"dimension": "fairness", "sli": {"tpr_gap": {}}, "objective": 0.1},
            {},
            "tpr_gap compares the groups of one attribute",
        ),
        (
            {"dimension": "fairness", "sli": {"tpr_gap": {"attribute": "country"}}, "objective": 0.1},
            {},
            r"slos\[0\].sli.tpr_gap.attribute: 'country' is not a segment of m",
        ),
        ({"dimension": "drift", "sli": {"drift": {}}}, {}, "drift compares against a reference: set models.m.baseline"),
        (
            {"dimension": "quality", "sli": {"precision": {"positive": [1]}}, "objective": 0.9},
            {},
            r"slos\[0\].sli.precision.positive: must be a class label",
        ),
        (
            {"dimension": "quality", "sli": {"mae": {"threshold": 0.5}}, "objective": 1},
            {},
            r"slos\[0\].sli.mae.threshold: unknown parameter",
        ),
    ],
)
def test_quality_fairness_and_drift_config_errors_name_the_field(slo: dict, model: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_slo_config(slo, **model))


def test_a_boolean_positive_class_is_the_class_1_and_the_fairness_attribute_joins_the_segments() -> None:
    config = parse_config(
        _slo_config(
            {"dimension": "fairness", "sli": {"fpr_gap": {"positive": True}}, "objective": 0.1},
            fairness={"attribute": "merchant_type"},
        )
    )
    slo = config.slos[0]
    assert slo.sli.params["positive"] == "1" and slo.sli.params["attribute"] == "merchant_type"
    assert config.models["m"].segments == ("region", "merchant_type")


def test_a_drift_slo_reads_a_baseline_reference_with_the_default_objective(tmp_path: Path) -> None:
    rng = np.random.default_rng(30)
    (tmp_path / "b.json").write_bytes(
        orjson.dumps({"metrics": {}, "reference": {"a": numeric_reference(rng.normal(0, 1, 2000), 20).to_dict()}})
    )
    data = _slo_config({"dimension": "drift", "sli": {"drift": {"method": "wasserstein"}}}, baseline="b.json")
    slo = parse_config(data, base_dir=tmp_path).slos[0]
    assert slo.objective == 0.1 and slo.sli.params["features"] == ("a",)
