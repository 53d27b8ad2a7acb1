"""OpenSLO v1 import and export: round trips, the spec's JSON schema and its published examples."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from sloguard.apps.cli import main
from sloguard.core.interop.openslo import export_openslo, import_openslo
from sloguard.core.interop.openslo_time import OpenSloError
from sloguard.core.spec.config import load_config

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "tests" / "data" / "openslo"
SPEC_FILES = SPEC / "schema-test" / "spec-files" / "v1"

# The spec's own schema test table (schema-test/schema_test.go): file -> valid?
SCHEMA_TABLE = {
    "invalid-apiversion.yaml": False,
    **{f"alert-condition/alert-condition{s}.yaml": True for s in ("", "-no-description")},
    **{f"alert-condition/alert-condition-{s}.yaml": False for s in ("no-condition", "no-sev")},
    **{f"alert-notification-target/alert-notification-target{s}.yaml": True for s in ("", "-no-description")},
    "alert-notification-target/alert-notification-target-no-target.yaml": False,
    **{f"alert-policy/alert-policy{s}.yaml": True for s in ("", "-inline-cond", "-many-notificationref")},
    **{f"alert-policy/alert-policy-{s}.yaml": False
       for s in ("malformed-cond", "malformed-targetref", "many-cond", "no-cond", "no-notification")},
    "data-source/data-source.yaml": True,
    **{f"service/service{s}.yaml": True for s in ("", "-no-displayname")},
    "service/service-long-description.yaml": False,
    **{f"sli/sli-{d}-{k}.yaml": True for d in ("description", "no-description")
       for k in ("ratio-bad-inline-metricsource", "ratio-bad-metricsourceref", "ratio-good-inline-metricsource",
                 "ratio-good-metricsourceref", "threshold-inline-metricsource", "threshold-metricsourceref")},
    **{f"slo/slo-{i}-{w}-{a}.yaml": True for i in ("indicatorref", "no-indicatorref")
       for w in ("calendar", "rolling") for a in ("alerts", "no-alerts")},
}


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    resources = []
    for f in (SPEC / "schemas" / "v1").rglob("*.schema.json"):
        doc = json.loads(f.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    root = registry.contents("https://openslo.com/schemas/v1/openslo.schema.json")
    return Draft7Validator(root, registry=registry)


def errors(validator: Draft7Validator, doc: object) -> list[str]:
    doc = json.loads(json.dumps(doc, default=str))  # YAML timestamps as text, as YAML-to-JSON does
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("name", sorted(SCHEMA_TABLE))
def test_the_vendored_schema_judges_the_spec_s_own_test_files_as_the_spec_does(validator, name):
    doc = yaml.safe_load((SPEC_FILES / name).read_text())
    assert (not errors(validator, doc)) == SCHEMA_TABLE[name]


def _config_path(example: str, tmp_path: Path) -> Path:
    """An example config; `llm-calendar` is llm.yaml with calendar windows (month in New York, ISO week in UTC)."""
    if example != "llm-calendar":
        return ROOT / "examples" / f"{example}.yaml"
    data = yaml.safe_load((ROOT / "examples" / "llm.yaml").read_text())
    data["slos"][0]["window"] = {"calendar": "month", "timezone": "America/New_York"}
    data["slos"][4]["window"] = {"calendar": "week"}
    path = tmp_path / "llm-calendar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _export(example: str, tmp_path: Path) -> Path:
    out = tmp_path / "openslo" / f"{example}.yaml"
    assert main(["export", "openslo", "--config", str(_config_path(example, tmp_path)), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("example", ["fraud", "recsys", "llm", "llm-calendar"])
def test_export_then_import_gives_back_an_equal_config(tmp_path, example):
    exported = _export(example, tmp_path)
    back = tmp_path / "elsewhere" / "config.yaml"  # another directory: the baseline path is rebased
    assert main(["import", "openslo", str(exported), "--out", str(back)]) == 0
    want = dataclasses.replace(load_config(_config_path(example, tmp_path)), source="")
    got = dataclasses.replace(load_config(back), source="")
    assert [s.name for s in got.slos] == [s.name for s in want.slos]
    for a, b in zip(got.slos, want.slos, strict=True):
        assert a == b, a.name
    assert got == want


@pytest.mark.parametrize("example", ["fraud", "recsys", "llm", "llm-calendar"])
def test_every_exported_object_is_valid_openslo_v1(tmp_path, validator, example):
    docs = list(yaml.safe_load_all(_export(example, tmp_path).read_text()))
    assert {d["kind"] for d in docs} >= {"Service", "SLO", "AlertPolicy", "AlertNotificationTarget"}
    for d in docs:
        assert errors(validator, d) == [], d["metadata"]["name"]


def test_ml_slis_keep_their_parameters_in_annotations():
    config = load_config(ROOT / "examples" / "fraud.yaml")
    slos = {d["metadata"]["name"]: d for d in export_openslo(config) if d["kind"] == "SLO"}
    drift = slos["fraud-feature-drift"]["spec"]
    sli = json.loads(drift["indicator"]["metadata"]["annotations"]["sloguard.io/sli"])
    want = next(s for s in config.slos if s.name == "fraud-feature-drift").sli.params
    assert sli["drift"]["features"] == list(want["features"]) and sli["drift"]["p_value"] == want["p_value"]
    assert drift["budgetingMethod"] == "Timeslices"
    assert drift["objectives"] == [{"displayName": "fraud-feature-drift", "target": 0.95, "timeSliceWindow": "5m",
                                    "op": "lte", "value": 0.1, "timeSliceTarget": 1}]
    ratio = slos["fraud-availability"]["spec"]
    assert ratio["budgetingMethod"] == "Occurrences" and ratio["objectives"][0]["target"] == 0.9995
    assert ratio["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]["query"] == (
        'sloguard_slo_events_total{slo="fraud-availability", model="fraud", segment="all"}')


def _load_all(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.mark.parametrize(("example", "message"), [
    ("examples/budgeting-method/occurences-slo.yaml",
     "[0] SLO search-slo: spec.indicator.spec.thresholdMetric: not supported for metric source 'Any'"),
    ("examples/budgeting-method/timeslices-slo.yaml",
     "spec.timeWindow[0].duration: a calendar window of '1m': sloguard has calendar months (1M) and weeks (1w)"),
    ("examples/budgeting-method/timeslices-slo.yaml", "spec.objectives: 2 objectives"),
    ("examples/budgeting-method/ratio-timeslices.yaml",
     "spec.indicator.spec.ratioMetric.total.metricSource.type: 'Any' is not supported"),
    ("examples/treat-low-traffic-as-equally-important/timeslices-slo.yaml", "is not supported"),
    ("schema-test/spec-files/v1/invalid-apiversion.yaml", "[0].apiVersion: 'openslo/v1alpha' is not supported"),
    ("schema-test/spec-files/v1/data-source/data-source.yaml", "(file): no SLO object"),
])
def test_the_published_examples_fail_with_the_path_of_what_sloguard_cannot_compute(tmp_path, capsys, example,
                                                                                  message):
    assert main(["import", "openslo", str(SPEC / example)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_published_example_with_a_sloguard_metric_source_imports(tmp_path):
    """The spec's occurrences example, its query replaced by a sloguard SLI, plus its published
    AlertPolicy, AlertCondition (made a page on a rising burn rate) and notification target."""
    slo = yaml.safe_load((SPEC / "examples/budgeting-method/occurences-slo.yaml").read_text())
    slo["spec"]["indicator"]["spec"] = {"ratioMetric": {"counter": True, **{
        k: {"metricSource": {"type": "sloguard", "spec": {"sli": {"latency": {"threshold_ms": 500}}}}}
        for k in ("good", "total")}}}
    slo["spec"]["alertPolicies"] = ["alert-policy"]
    policy = yaml.safe_load((SPEC_FILES / "alert-policy/alert-policy.yaml").read_text())
    condition = yaml.safe_load((SPEC_FILES / "alert-condition/alert-condition.yaml").read_text())
    target = yaml.safe_load((SPEC_FILES / "alert-notification-target/alert-notification-target.yaml").read_text())
    policy["spec"]["conditions"] = [{"conditionRef": "alert-condition"}]
    with pytest.raises(OpenSloError) as e:
        import_openslo([slo, policy, condition, target])
    assert "AlertPolicy alert-policy: spec.conditions[0].spec.condition.op: 'lte' is not supported" in str(e.value)
    condition["spec"].update(severity="page", condition={**condition["spec"]["condition"], "op": "gte"})
    raw, warnings = import_openslo([slo, policy, condition, target])
    assert warnings and "short-window" in warnings[0]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    [got] = load_config(path).slos
    assert (got.name, got.model, got.sli.kind, got.sli.params, got.objective, got.window) == (
        "search-slo", "web-shop", "latency", {"threshold_ms": 500}, 0.99, "14d")
    assert got.owner == "on-call-devops-mail-notification"
    [rule] = got.rules
    assert (rule.name, rule.severity, rule.burn_rate, rule.long_window_s, rule.short_window_s) == (
        "alert-condition", "page", 24, 900, 60)


def test_what_openslo_cannot_name_or_sloguard_cannot_read_is_an_error_with_its_path(tmp_path, capsys):
    raw = yaml.safe_load((ROOT / "examples" / "fraud.yaml").read_text())
    old = raw["slos"][0]["name"]
    raw["slos"][0]["name"] = "Fraud_Availability"
    canary = raw.get("rollout", {}).get("canary", {})  # the rollout section names the SLO too
    canary["slos"] = ["Fraud_Availability" if s == old else s for s in canary.get("slos", [])]
    raw["models"]["fraud"]["baseline"] = str(ROOT / "examples" / "baselines" / "fraud.json")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["export", "openslo", "--config", str(config)]) == 2
    assert "slos[0].name: 'Fraud_Availability' is not an OpenSLO name" in capsys.readouterr().err
    with pytest.raises(OpenSloError) as e:
        import_openslo([{"apiVersion": "openslo/v1", "kind": "BudgetAdjustment", "metadata": {"name": "x"},
                         "spec": {}}])
    assert "[0].kind: 'BudgetAdjustment' is not supported" in str(e.value)


def test_kafka_secrets_stay_out_of_the_export_and_topic_names_travel(tmp_path):
    raw = yaml.safe_load((ROOT / "examples" / "recsys.yaml").read_text())
    raw["models"]["recsys"]["baseline"] = str(ROOT / "examples" / "baselines" / "recsys.json")
    raw["kafka"] = {"bootstrap_servers": "kafka:9092", "client": {"sasl.password": "hunter2"},
                    "topics": {"alerts": "team.alerts"}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    text = yaml.safe_dump_all(export_openslo(load_config(config)))
    assert "hunter2" not in text and "kafka:9092" not in text
    back, _ = import_openslo(list(yaml.safe_load_all(text)))
    assert back["kafka"] == {"topics": {"alerts": "team.alerts"}}


def test_a_calendar_window_sloguard_cannot_start_is_an_error_with_its_path(tmp_path, capsys):
    """sloguard's months start on the 1st and its weeks on a Monday, at local midnight."""
    exported = _export("llm-calendar", tmp_path)
    text = exported.read_text()
    assert text.count("startTime: '2024-01-01 00:00:00'") == 2
    exported.write_text(text.replace("startTime: '2024-01-01 00:00:00'", "startTime: '2024-01-02 00:00:00'", 1))
    assert main(["import", "openslo", str(exported)]) == 2
    err = capsys.readouterr().err
    assert ("spec.timeWindow[0].calendar.startTime: 2024-01-02 00:00:00: sloguard's calendar months start at "
            "midnight on the 1st") in err
