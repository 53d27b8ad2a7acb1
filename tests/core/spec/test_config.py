"""Tests for sloguard.core.spec.config: the examples load, and every broken config names the field at fault.

Each broken config is a valid base with one mistake, passed through `parse_config`; the test
asserts the exact path of the mistake (`slos[0].sli.latency.threshold_ms`) heads one of the
`ConfigError.problems` lines.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sloguard.core.spec.config import load_config, parse_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.policy import AlertRule
from sloguard.core.spec.timeutil import parse_duration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SLOGUARD = Path(sys.executable).parent / "sloguard"

D, H, M = 86_400, 3600, 60
WORKBOOK = (
    AlertRule("fast-burn", "page", 14.4, H, 5 * M),
    AlertRule("medium-burn", "page", 6.0, 6 * H, 30 * M),
    AlertRule("slow-burn", "ticket", 1.0, 3 * D, 6 * H),
)


def base() -> dict[str, Any]:
    """A small valid config: one model, one availability SLO and one metric SLO."""
    return {
        "evaluation_interval": "1m",
        "models": {"fraud": {"segments": ["region"], "features": ["amount", "age"]}},
        "owners": {"infrastructure": {"route": "sre-oncall", "actions": ["roll back"]}},
        "slos": [
            {
                "name": "avail",
                "model": "fraud",
                "dimension": "infrastructure",
                "sli": "availability",
                "objective": 0.999,
                "window": "30d",
            },
            {
                "name": "p99",
                "model": "fraud",
                "dimension": "infrastructure",
                "sli": {"latency_quantile": {"quantile": 0.99}},
                "objective": 250,
                "budgeting": {"timeslices": "5m", "min_samples": 50, "target": 0.99},
                "window": "30d",
            },
        ],
    }


def problems_of(data: Any, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data, base_dir=base_dir)
    assert err.value.problems, "a ConfigError must list its problems"
    for p in err.value.problems:
        assert p in str(err.value)
    return err.value.problems


def has_rule_path(problems: list[str], slo: int, rule: int, field: str) -> bool:
    """True if a problem is at `slos[i].alerting.rules[j].field` (a `(rule-name)` label may follow
    the index, as in `slos[0].alerting.rules[0] (fast-burn).burn_rate`)."""
    pattern = rf"^slos\[{slo}\]\.alerting\.rules\[{rule}\]( \([\w-]+\))?\.{field}: "
    return any(re.match(pattern, p) for p in problems)


def has_path(problems: list[str], path: str) -> bool:
    """True if a problem line is `path: ...` (the exact path, not a longer or shorter one)."""
    return any(p.startswith(f"{path}: ") for p in problems)


# -------------------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert [s.name for s in cfg.slos] == [s["name"] for s in raw["slos"]]
    assert set(cfg.models) == set(raw["models"])
    assert cfg.evaluation_interval_s == 60
    for slo, spec in zip(cfg.slos, raw["slos"], strict=True):
        assert slo.window_s == 30 * D
        if isinstance(spec["objective"], dict):  # relative: resolved against the example's baseline file
            base = cfg.models[slo.model].baseline_metrics[slo.name]
            assert slo.baseline == base and slo.objective == pytest.approx(
                spec["objective"]["relative_to_baseline"] * base
            )
        else:
            assert slo.objective == pytest.approx(spec["objective"])
        if "budgeting" in spec:
            step = slo.budgeting.slice_s
            assert slo.budgeting.method == "timeslices"
            assert slo.budgeting.slice_s == parse_duration(spec["budgeting"]["timeslices"])
            assert slo.error_budget == pytest.approx(1 - spec["budgeting"]["target"])
        else:
            step = 60
            assert slo.budgeting.method == "occurrences"
            assert slo.error_budget == pytest.approx(1 - spec["objective"])
        if "alerting" not in spec:  # a 30-day window keeps the workbook table, windows at least a slice
            assert slo.rules == tuple(
                dataclasses.replace(r, short_window_s=max(r.short_window_s, step)) for r in WORKBOOK
            )


def test_base_is_valid() -> None:
    cfg = parse_config(base())
    assert [s.name for s in cfg.slos] == ["avail", "p99"]
    assert cfg.slos[0].error_budget == pytest.approx(0.001)
    assert cfg.owner_of(cfg.slos[0]).route == "sre-oncall"


def test_rules_scale_with_the_slo_window() -> None:
    data = base()
    data["slos"][0]["window"] = "7d"
    slo = parse_config(data).slos[0]
    assert [(r.long_window_s, r.short_window_s) for r in slo.rules] == [
        (14 * M, 1 * M),
        (84 * M, 7 * M),
        (16 * H + 48 * M, 84 * M),
    ]


# ------------------------------------------------------------------------------- broken configs


def _set(data: dict, dotted: str, value: Any) -> None:
    """Set a value at `slos.0.sli` style paths (list indices as integers)."""
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node = data
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


_DELETE = object()

BROKEN = [
    ("negative latency threshold", "slos.0.sli", {"latency": {"threshold_ms": -5}}, "slos[0].sli.latency.threshold_ms"),
    ("zero latency threshold", "slos.0.sli", {"latency": {"threshold_ms": 0}}, "slos[0].sli.latency.threshold_ms"),
    ("missing latency threshold", "slos.0.sli", {"latency": {}}, "slos[0].sli.latency.threshold_ms"),
    ("unknown SLI parameter", "slos.0.sli", {"latency": {"threshold_ms": 5, "p": 1}}, "slos[0].sli.latency.p"),
    ("unknown SLI", "slos.0.sli", "happiness", "slos[0].sli"),
    ("SLI of two keys", "slos.0.sli", {"latency": {"threshold_ms": 5}, "availability": {}}, "slos[0].sli"),
    (
        "quantile out of (0, 1)",
        "slos.1.sli",
        {"latency_quantile": {"quantile": 99}},
        "slos[1].sli.latency_quantile.quantile",
    ),
    ("unknown model", "slos.0.model", "spam", "slos[0].model"),
    (
        "latency under data",
        "slos.0.sli",
        {"latency": {"threshold_ms": 100}},
        "slos[0].dimension",
        {"slos.0.dimension": "data"},
    ),
    ("unknown dimension", "slos.0.dimension", "vibes", "slos[0].dimension"),
    ("percent objective for a ratio SLI", "slos.0.objective", 99.9, "slos[0].objective"),
    ("objective of 1 for a ratio SLI", "slos.0.objective", 1, "slos[0].objective"),
    ("objective is text", "slos.0.objective", "high", "slos[0].objective"),
    ("missing objective", "slos.0.objective", _DELETE, "slos[0].objective"),
    ("window not a multiple of the interval", "slos.0.window", "90s", "slos[0].window"),
    ("window not a duration", "slos.0.window", "a month", "slos[0].window"),
    ("missing window", "slos.0.window", _DELETE, "slos[0].window"),
    ("timeslices do not divide the window", "slos.1.budgeting.timeslices", "7m", "slos[1].budgeting.timeslices"),
    ("timeslices not a multiple of the interval", "slos.1.budgeting.timeslices", "90s", "slos[1].budgeting.timeslices"),
    ("metric SLI budgeted by occurrences", "slos.1.budgeting", {"method": "occurrences"}, "slos[1].budgeting"),
    ("unknown budgeting method", "slos.1.budgeting.method", "vibes", "slos[1].budgeting.method"),
    ("timeslice target of 1", "slos.1.budgeting.target", 1.0, "slos[1].budgeting.target"),
    ("unknown SLO key", "slos.0.severity", "page", "slos[0].severity"),
    ("missing SLO name", "slos.0.name", _DELETE, "slos[0].name"),
    ("duplicate SLO names", "slos.1.name", "avail", "slos[1].name"),
    ("bad evaluation interval", "evaluation_interval", "5x", "evaluation_interval"),
    ("unknown topic", "kafka", {"topics": {"predictions": "x"}}, "kafka.topics.predictions"),
    ("owner without route", "owners.infrastructure", {"actions": ["a"]}, "owners.infrastructure.route"),
    ("unknown policy", "alerting", {"policy": "lenient"}, "alerting.policy"),
    ("bad no-data severity", "alerting", {"no_data": {"severity": "sms"}}, "alerting.no_data.severity"),
    ("unknown model key", "models.fraud.segmets", ["region"], "models.fraud.segmets"),
    ("bad label delay", "models.fraud.label_delay", "a week", "models.fraud.label_delay"),
    ("no models", "models", {}, "models"),
    ("no SLOs", "slos", [], "slos"),
    (
        "completeness without model features",
        "slos.0",
        {
            "name": "complete",
            "model": "fraud",
            "dimension": "data",
            "sli": "completeness",
            "objective": 0.99,
            "window": "30d",
        },
        "slos[0].sli",
        {"models.fraud.features": _DELETE},
    ),
    ("relative objective without a baseline", "slos.1.objective", {"relative_to_baseline": 1.2}, "slos[1].objective"),
    (
        "objective mapping with both forms",
        "slos.1.objective",
        {"relative_to_baseline": 1.2, "max_degradation": 0.1},
        "slos[1].objective",
    ),
    ("missing baseline file", "models.fraud.baseline", "nope.json", "models.fraud.baseline"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_config_names_the_path(case: tuple) -> None:
    _, where, value, path, *extra = case
    data = base()
    _set(data, where, value)
    for k, v in (extra[0] if extra else {}).items():
        _set(data, k, v)
    problems = problems_of(data, base_dir=ROOT)
    assert has_path(problems, path), problems


def test_unknown_top_level_key() -> None:
    data = base()
    data["slo"] = []
    problems = problems_of(data)
    assert any(re.match(r"^(\(top level\)\.)?slo: unknown key", p) for p in problems), problems


@pytest.mark.parametrize("objective", [0.9, 0.93])
def test_burn_rate_that_can_never_fire(objective: float) -> None:
    # default policy: 14.4 x (1 - objective) > 1, so the fast-burn rule can never fire
    data = base()
    data["slos"][0]["objective"] = objective
    problems = problems_of(data)
    assert has_rule_path(problems, 0, 0, "burn_rate"), problems
    assert "fast-burn" in problems[0]
    assert len(problems) == 1, problems  # 6 x (1 - objective) and 1 x (1 - objective) are fine


def test_burn_rate_just_possible_is_valid() -> None:
    data = base()
    data["slos"][0]["objective"] = 0.94  # 14.4 x 0.06 = 0.864
    parse_config(data)


def test_timeslice_target_bounds_the_burn_rate() -> None:
    data = base()
    data["slos"][1]["budgeting"]["target"] = 0.9  # 14.4 x 0.1 > 1 for the slice budget
    problems = problems_of(data)
    assert has_rule_path(problems, 1, 0, "burn_rate"), problems


_INLINE_RULE = {"name": "custom", "severity": "page", "burn_rate": 2}


def test_custom_rule_short_window_not_shorter_than_long() -> None:
    data = base()
    data["slos"][0]["alerting"] = {"rules": [{**_INLINE_RULE, "long_window": "5m", "short_window": "1h"}]}
    problems = problems_of(data)
    # the exact path of the field, slos[0].alerting.rules[0].short_window, as for every other field
    assert has_rule_path(problems, 0, 0, "short_window"), problems


@pytest.mark.parametrize(
    ("override", "field"),
    [({"burn_rate": 0}, "burn_rate"), ({"severity": "sms"}, "severity"), ({"short_window": "2h"}, "short_window")],
)
def test_custom_rules_list_errors_name_the_full_path(override: dict, field: str) -> None:
    good = {**_INLINE_RULE, "name": "ok", "long_window": "1h", "short_window": "5m"}
    bad = {**_INLINE_RULE, "long_window": "1h", "short_window": "5m", **override}
    data = base()
    data["slos"][0]["alerting"] = {"rules": [good, bad]}
    problems = problems_of(data)
    assert has_rule_path(problems, 0, 1, field), problems
    data = base()
    data["alerting"] = {"rules": [good, bad]}
    problems = problems_of(data)
    assert any(p.startswith(f"alerting.rules[1].{field}: ") for p in problems), problems


def test_custom_rule_windows_collapsing_after_scaling() -> None:
    # 10m/5m written for 30 days, scaled to 1 day with 1-minute steps: both become 1m
    data = base()
    data["slos"][0]["window"] = "1d"
    data["slos"][0]["alerting"] = {"rules": [{**_INLINE_RULE, "long_window": "10m", "short_window": "5m"}]}
    problems = problems_of(data)
    assert has_rule_path(problems, 0, 0, "short_window"), problems


def test_custom_rule_longer_than_the_slo_window() -> None:
    data = base()
    data["slos"][0]["alerting"] = {"rules": [{**_INLINE_RULE, "long_window": "31d", "short_window": "1d"}]}
    problems = problems_of(data)
    assert has_rule_path(problems, 0, 0, "long_window"), problems


def test_multiple_problems_reported_together() -> None:
    data = base()
    data["evaluation_interval"] = "5x"
    data["slos"][0]["sli"] = {"latency": {"threshold_ms": -1}}
    data["slos"][1]["model"] = "spam"
    data["owners"]["infrastructure"] = {}
    problems = problems_of(data)
    for path in (
        "evaluation_interval",
        "slos[0].sli.latency.threshold_ms",
        "slos[1].model",
        "owners.infrastructure.route",
    ):
        assert has_path(problems, path), (path, problems)


def test_config_must_be_a_mapping() -> None:
    problems = problems_of(["slos"])
    assert "mapping" in problems[0]


# ------------------------------------------------------------------------------------- baselines


def _baseline_config(tmp_path: Path, metrics: dict[str, float], slo: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "baselines").mkdir(exist_ok=True)
    (tmp_path / "baselines" / "fraud.json").write_bytes(orjson.dumps({"metrics": metrics}))
    data = base()
    data["models"]["fraud"]["baseline"] = "baselines/fraud.json"
    data["slos"] = [slo]
    return data


def _dq_slo(objective: Any) -> dict[str, Any]:
    """data_quality: a metric SLI where higher is better."""
    return {
        "name": "dq",
        "model": "fraud",
        "dimension": "data",
        "sli": {"data_quality": {"max_age": "1h"}},
        "objective": objective,
        "budgeting": {"timeslices": "5m", "target": 0.99},
        "window": "7d",
    }


def _p99_slo(objective: Any) -> dict[str, Any]:
    """latency_quantile: a metric SLI where lower is better."""
    return {
        "name": "p99",
        "model": "fraud",
        "dimension": "infrastructure",
        "sli": {"latency_quantile": {"quantile": 0.99}},
        "objective": objective,
        "budgeting": {"timeslices": "5m", "target": 0.99},
        "window": "7d",
    }


def test_relative_to_baseline_resolves_to_factor_times_baseline(tmp_path: Path) -> None:
    data = _baseline_config(tmp_path, {"dq": 0.9}, _dq_slo({"relative_to_baseline": 0.98}))
    cfg = parse_config(data, base_dir=tmp_path)
    slo = cfg.slos[0]
    assert slo.objective == pytest.approx(0.98 * 0.9)
    assert slo.baseline == pytest.approx(0.9)
    assert cfg.models["fraud"].baseline == (tmp_path / "baselines" / "fraud.json").resolve()


def test_relative_to_baseline_for_lower_is_better(tmp_path: Path) -> None:
    data = _baseline_config(tmp_path, {"p99": 200.0}, _p99_slo({"relative_to_baseline": 1.25}))
    assert parse_config(data, base_dir=tmp_path).slos[0].objective == pytest.approx(250.0)


def test_max_degradation_higher_is_better(tmp_path: Path) -> None:
    # (baseline - current) / baseline <= 0.05  <=>  current >= 0.95 x baseline
    data = _baseline_config(tmp_path, {"dq": 0.9}, _dq_slo({"max_degradation": 0.05}))
    assert parse_config(data, base_dir=tmp_path).slos[0].objective == pytest.approx(0.9 * 0.95)


def test_max_degradation_lower_is_better(tmp_path: Path) -> None:
    # for a latency, degrading means growing: current <= 1.1 x baseline
    data = _baseline_config(tmp_path, {"p99": 200.0}, _p99_slo({"max_degradation": 0.1}))
    assert parse_config(data, base_dir=tmp_path).slos[0].objective == pytest.approx(220.0)


def test_baseline_without_a_metric_for_the_slo(tmp_path: Path) -> None:
    data = _baseline_config(tmp_path, {"other": 0.5}, _dq_slo({"relative_to_baseline": 0.98}))
    problems = problems_of(data, base_dir=tmp_path)
    assert has_path(problems, "slos[0].objective"), problems


def test_relative_objective_for_a_ratio_sli_must_stay_below_one(tmp_path: Path) -> None:
    slo = {
        "name": "avail",
        "model": "fraud",
        "dimension": "infrastructure",
        "sli": "availability",
        "objective": {"relative_to_baseline": 1.01},
        "window": "30d",
    }
    data = _baseline_config(tmp_path, {"avail": 0.999}, slo)
    problems = problems_of(data, base_dir=tmp_path)
    assert has_path(problems, "slos[0].objective"), problems


def test_baseline_not_json(tmp_path: Path) -> None:
    data = _baseline_config(tmp_path, {"dq": 0.9}, _dq_slo({"relative_to_baseline": 0.98}))
    (tmp_path / "baselines" / "fraud.json").write_text("not json")
    problems = problems_of(data, base_dir=tmp_path)
    assert has_path(problems, "models.fraud.baseline"), problems


# ------------------------------------------------------------------------------------------ files


def test_load_config_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos: [\n")
    with pytest.raises(ConfigError):
        load_config(bad)


def test_load_config_resolves_baseline_relative_to_the_file(tmp_path: Path) -> None:
    data = _baseline_config(tmp_path, {"dq": 0.9}, _dq_slo({"relative_to_baseline": 0.98}))
    path = tmp_path / "sloguard.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).slos[0].objective == pytest.approx(0.882)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_cli_validate_accepts_examples(path: Path) -> None:
    run = subprocess.run([str(SLOGUARD), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_cli_validate_rejects_a_bad_file_naming_the_path(tmp_path: Path) -> None:
    data = base()
    data["slos"][0]["sli"] = {"latency": {"threshold_ms": -5}}
    data["slos"][1]["objective"] = "high"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    run = subprocess.run([str(SLOGUARD), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "slos[0].sli.latency.threshold_ms" in run.stderr
    assert "slos[1].objective" in run.stderr


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path) -> None:
    """YAML keeps the last of two equal keys: a second `slos:` would silently drop the first's SLOs."""
    from sloguard.core.spec.config import load_config
    from sloguard.core.spec.model import ConfigError

    text = (ROOT / "examples" / "fraud.yaml").read_text()
    path = tmp_path / "twice.yaml"
    path.write_text(text + "\nslos: []\n")
    (tmp_path / "baselines").symlink_to(ROOT / "examples" / "baselines")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "key 'slos' appears twice" in str(e.value)
    assert "first on line" in str(e.value)


def test_each_problem_of_a_config_file_names_its_line(tmp_path: Path) -> None:
    from sloguard.core.spec.yamlfile import key_lines, line_of

    text = """\
models:
  m:
    label_delay: soon
slos:
  - name: a
    model: m
    dimension: infrastructure
    sli: availability
    objective: 99.9
    window: 30d
  - {name: b, model: m, dimension: infrastructure, sli: availability, objective: 0.99, window: 7x}
"""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert any(x.startswith("  - line 3: models.m.label_delay: ") for x in lines), lines
    assert any(x.startswith("  - line 9: slos[0].objective: a ratio SLI's objective") for x in lines), lines
    assert any(x.startswith("  - line 11: slos[1].window: ") for x in lines), lines
    assert all(" line " not in p for p in e.value.problems)  # the problems themselves stay `path: message`
    index = key_lines(text)
    assert index["slos[1]"] == 11 and index["models.m"] == 2
    assert line_of("slos[0].sli.latency.threshold_ms: bad", index) == 8  # the deepest field the file has
    assert line_of("(top level): must be a mapping", index) is None
