"""`sloguard export prometheus`: rules a real Prometheus accepts (`promtool check rules`) and that
fire as sloguard's policy says on synthetic counters (`promtool test rules`, Prometheus' own engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sloguard.apps.cli import main
from sloguard.core.interop.prometheus_rules import ALERT_NAME, EXHAUSTED_ALERT_NAME, prometheus_rules
from sloguard.core.spec.config import load_config

ROOT = Path(__file__).resolve().parents[3]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; `make test` tries)"
)


@needs_promtool
@pytest.mark.parametrize("example", ["fraud", "recsys", "llm"])
def test_promtool_accepts_the_exported_rules(tmp_path, example, capsys):
    out = tmp_path / "rules.yml"
    assert main(["export", "prometheus", "--config", str(ROOT / "examples" / f"{example}.yaml"),
                 "--out", str(out)]) == 0
    check = subprocess.run([PROMTOOL, "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_every_rule_window_and_the_slo_window_get_a_recording_and_labelled_slis_are_skipped():
    config = load_config(ROOT / "examples" / "fraud.yaml")
    doc, skipped = prometheus_rules(config)
    assert {name for name, _ in skipped} == {"fraud-precision", "fraud-recall", "fraud-fpr", "fraud-fpr-gap"}
    assert all("label_delay" in reason for _, reason in skipped)
    groups = {g["name"]: g["rules"] for g in doc["groups"]}
    slo = next(s for s in config.slos if s.name == "fraud-latency-p99")  # timeslices: windows scaled to slices
    records = {r["record"] for r in groups["sloguard-slo-sli-recordings-fraud-latency-p99"]}
    want = {f"slo:sli_error:ratio_rate{w}" for r in slo.rules for w in r.windows} | {"slo:sli_error:ratio_rate30d"}
    assert records == want
    alerts = groups["sloguard-slo-alerts-fraud-latency-p99"]
    assert [(a["labels"]["rule"], a["labels"]["severity"]) for a in alerts] == [
        *((r.name, r.severity) for r in slo.rules), ("budget-exhausted", config.exhausted_severity)]
    assert "increase(" not in alerts[0]["expr"]  # the events guard is for occurrence SLOs only


def _series(segment: str, good_per_min: float, events_per_min: float, minutes: int) -> list[dict]:
    labels = f'model="fraud",slo="fraud-availability",dimension="infrastructure",segment="{segment}"'
    return [
        {"series": f"sloguard_slo_good_total{{{labels}}}", "values": f"0+{good_per_min}x{minutes}"},
        {"series": f"sloguard_slo_events_total{{{labels}}}", "values": f"0+{events_per_min}x{minutes}"},
    ]


@needs_promtool
def test_prometheus_fires_the_policy_s_alerts_on_synthetic_counters(tmp_path):
    """1 % errors against a 0.9995 objective is a burn of 20: every rule fires and the budget is spent;
    0.01 % (burn 0.2) fires nothing; a segment with 1 request a minute, all failing, stays under
    the 100-event guard of every rule's long window and of the budget-exhausted alert."""
    config = load_config(ROOT / "examples" / "fraud.yaml")
    doc, _ = prometheus_rules(config)
    for g in doc["groups"]:  # annotations are templates; this test checks which alerts fire
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    ids = {"model": "fraud", "slo": "fraud-availability", "dimension": "infrastructure",
           "sloth_id": "fraud-fraud-availability", "sloth_service": "fraud", "sloth_slo": "fraud-availability"}
    slo = next(s for s in config.slos if s.name == "fraud-availability")
    burning = [{"exp_labels": {**ids, "segment": "all", "rule": r.name, "severity": r.severity,
                               "sloth_severity": r.severity, "owner": "sre-oncall"}} for r in slo.rules]
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": _series("all", 990, 1000, 120) + _series("region=eu", 999.9, 1000, 120)
            + _series("region=apac", 0, 1, 120),
            "promql_expr_test": [{
                "expr": 'round(1e6 * slo:sli_error:ratio_rate5m{sloth_slo="fraud-availability", segment="all"})',
                "eval_time": "30m",
                "exp_samples": [{"labels": '{model="fraud",slo="fraud-availability",'
                                           'dimension="infrastructure",segment="all",sloth_id="fraud-fraud-availability",'
                                           'sloth_service="fraud",sloth_slo="fraud-availability",sloth_window="5m"}',
                                 "value": 10_000}],  # 1 % errors
            }],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": ALERT_NAME, "exp_alerts": burning},
                {"eval_time": "30m", "alertname": EXHAUSTED_ALERT_NAME, "exp_alerts": [
                    {"exp_labels": {**ids, "segment": "all", "rule": "budget-exhausted", "severity": "ticket",
                                    "sloth_severity": "ticket", "sloth_window": "30d"}},
                ]},
            ],
        }],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_config_with_no_expressible_slo_exits_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"m": {"label_delay": "1h"}},
        "slos": [{"name": "acc", "model": "m", "dimension": "quality", "sli": "accuracy", "objective": 0.9,
                  "window": "30d", "budgeting": {"timeslices": "15m", "target": 0.99}}],
    }))
    assert main(["export", "prometheus", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "skipped acc: accuracy is judged on labels" in err and "no SLO can be expressed" in err


@needs_promtool
def test_metric_slis_burn_bad_slices_of_all_the_window_s_slices(tmp_path):
    """fraud-latency-p99 (5-minute slices, target 0.99): the first six slices are bad, then good.
    At 36 min the 6h window holds 6 bad of its 72 slices (burn 8.3 >= 6) and the 30m window 5 of 6:
    medium-burn fires. fast-burn's 5m window holds only a good slice; slow-burn's 3d window burns only
    6 / 864 / 0.01 = 0.69. Were judged slices the denominator, slow-burn would burn 86 and fire.
    Evaluated at 36 min, not 35: promtool runs the recording and alerting groups in no fixed order,
    so an alert may read the recordings of the minute before, and at 34 min fast-burn still held."""
    config = load_config(ROOT / "examples" / "fraud.yaml")
    doc, _ = prometheus_rules(config)
    doc["groups"] = [g for g in doc["groups"] if g["name"].endswith("fraud-latency-p99")]
    for g in doc["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    minutes = range(0, 61)
    judged = [m // 5 for m in minutes]  # a slice is judged (counted) when it ends
    good = [max(0, j - 6) for j in judged]
    labels = 'model="fraud",slo="fraud-latency-p99",dimension="infrastructure",segment="all"'
    ids = {"model": "fraud", "slo": "fraud-latency-p99", "dimension": "infrastructure", "segment": "all",
           "sloth_id": "fraud-fraud-latency-p99", "sloth_service": "fraud", "sloth_slo": "fraud-latency-p99"}
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f"sloguard_slo_events_total{{{labels}}}", "values": " ".join(map(str, judged))},
                         {"series": f"sloguard_slo_good_total{{{labels}}}", "values": " ".join(map(str, good))}],
        "alert_rule_test": [{"eval_time": "36m", "alertname": ALERT_NAME, "exp_alerts": [{"exp_labels": {
            **ids, "rule": "medium-burn", "severity": "page", "sloth_severity": "page", "owner": "sre-oncall"}}]}],
    }]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_calendar_slo_is_skipped_with_the_reason() -> None:
    """A calendar budget resets at local midnight on the 1st; rules over rolling windows would budget
    another window, so the export says so instead of writing them."""
    from sloguard.core.spec.config import parse_config

    data = yaml.safe_load((Path(__file__).resolve().parents[3] / "examples" / "llm.yaml").read_text())
    data["slos"][0]["window"] = {"calendar": "month", "timezone": "Europe/Berlin"}
    doc, skipped = prometheus_rules(parse_config(data))
    assert [name for name, _ in skipped] == ["assistant-availability"]
    assert "calendar month (Europe/Berlin) budget starts over" in skipped[0][1]
    assert not any("assistant-availability" in g["name"] for g in doc["groups"])
    assert any("assistant-ttft" in g["name"] for g in doc["groups"])
