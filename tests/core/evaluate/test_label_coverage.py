"""Labelled slices wait for their labels (sloguard/core/evaluate/label_coverage.py): a slice judged on the first,
unrepresentative labels must not page and resolve; a slice whose labels never reach the share is
judged at its deadline; budget events state the rule."""

from __future__ import annotations

import numpy as np
import pytest
from factories import T0, epoch, of
from test_quality_slos import quality_config, run_mixed, traffic

from sloguard.core.messages.outputs import LabelCoverage
from sloguard.core.spec.model import ConfigError

RECALL = {"name": "recall", "sli": {"recall": {"positive": 1}}, "objective": 0.9}


def _early_misses(start: float, end: float, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Good predictions (recall ~0.95) whose first labels are the misses: the missed frauds are
    confirmed in a minute, the rest of the labels half an hour later."""
    preds, labels = traffic(start, end, 10.0, rng, accuracy=0.95, regions=("eu",), id_prefix="e")
    by_id = {p["id"]: p for p in preds}
    early_tp = 0
    for lab in labels:
        p = by_id[lab["id"]]
        missed = lab["label"] == 1 and p["prediction"] == 0
        if missed or (lab["label"] == 1 and early_tp < 300):
            early_tp += not missed
            lab["ts"] = p["ts"] + 60
        else:
            lab["ts"] = p["ts"] + 1800
    return preds, labels


def _run(**model: object) -> list:
    rng = np.random.default_rng(5)
    calm, calm_labels = traffic(T0, T0 + 3600, 2.0, rng, label_delay=60, regions=("eu",))
    odd, odd_labels = _early_misses(T0 + 3600, T0 + 5400, rng)
    after, after_labels = traffic(T0 + 5400, T0 + 12_600, 2.0, rng, label_delay=60, regions=("eu",), id_prefix="a")
    config = quality_config([RECALL], **model)
    out, _ = run_mixed(config, calm + odd + after, calm_labels + odd_labels + after_labels, size=500)
    return out


def test_first_labels_do_not_page_when_the_slice_waits_for_enough_of_them() -> None:
    judged_early = _run(label_coverage={"min_share": 0})
    pages = of(judged_early, "alert", slo="recall", segment={}, severity="page")
    assert pages, "judged on its first labels, a good slice reads bad and pages"
    waited = _run()  # default: 40 % of a slice's answered predictions labelled, or the label delay
    assert of(waited, "alert", slo="recall", severity="page") == []
    end = of(waited, "budget", slo="recall", segment={})[-1]
    assert end.label_coverage == LabelCoverage(min_share=0.4, wait="6h", waiting_slices=0)
    assert end.total - end.good == 0  # every slice was judged good on its labels in the end


def test_a_slice_whose_labels_stay_few_is_judged_at_its_deadline() -> None:
    rng = np.random.default_rng(6)
    preds, labels = traffic(T0, T0 + 3600, 2.0, rng, label_delay=60, label_share=0.3, regions=("eu",))
    config = quality_config([RECALL], label_coverage={"min_share": 0.5, "wait": "20m"})
    out, _ = run_mixed(config, preds, labels)
    whole = of(out, "budget", slo="recall", segment={})
    at = {epoch(e.ts): e for e in whole}
    # at 00:30 the slices ending 00:05 .. 00:10 are past their 20-minute deadline (judged at the
    # 5-minute re-judge), the later ones still wait: 30 % of their predictions have labels
    e = at[T0 + 1800]
    assert e.burn_rates_to == "2026-01-01T00:10:00.000Z"
    assert e.label_coverage.waiting_slices == 4  # 00:10, :15, :20, :25 slices
    assert e.good == 2
    # with a lower share, they are judged as soon as it is in: the newest slice has ~24 % at 00:30
    # (labels a minute late: those of its last minute are still out)
    config = quality_config([RECALL], label_coverage={"min_share": 0.15, "wait": "20m"})
    out, _ = run_mixed(config, preds, labels)
    e = {epoch(x.ts): x for x in of(out, "budget", slo="recall", segment={})}[T0 + 1800]
    assert e.burn_rates_to == "2026-01-01T00:30:00.000Z" and e.label_coverage.waiting_slices == 0


def test_coverage_config_is_checked() -> None:
    config = quality_config([RECALL, {**RECALL, "name": "r2", "budgeting": {
        "timeslices": "5m", "min_samples": 20, "target": 0.99, "label_coverage": {"min_share": 0.8, "wait": "1h"}}}])
    a, b = config.slos
    assert (a.budgeting.min_label_share, a.budgeting.label_wait_s) == (0.4, 6 * 3600)  # wait: the label delay
    assert (b.budgeting.min_label_share, b.budgeting.label_wait_s) == (0.8, 3600)
    with pytest.raises(ConfigError, match=r"models\.m\.label_coverage\.wait: 1d is longer than the label_delay"):
        quality_config([RECALL], label_coverage={"wait": "1d"})
    with pytest.raises(ConfigError, match=r"label_coverage\.min_share: must be in \[0, 1\]"):
        quality_config([RECALL], label_coverage={"min_share": 50})
    with pytest.raises(ConfigError, match="only SLIs judged on labels wait for label coverage"):
        quality_config([{"name": "p", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.9}},
                         "objective": 100, "budgeting": {"timeslices": "5m", "label_coverage": {"min_share": 0.5}}}])
