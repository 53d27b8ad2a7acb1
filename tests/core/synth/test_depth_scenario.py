"""The ml-depth scenario end to end: `sloguard replay` of examples/ml-depth.yaml pages on each
injected incident (estimated precision before labels, an intersectional equalized-odds gap, a
correlation flip) and the per-attribute and per-feature SLOs that cannot see them stay quiet."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sloguard.apps.cli import main
from sloguard.apps.replay import replay
from sloguard.core.spec.config import load_config, parse_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import parse_rfc3339
from sloguard.core.spec.yamlfile import load_yaml
from sloguard.core.stats.calibration import IsotonicCalibration
from sloguard.core.synth.contract import incidents_from_manifest
from sloguard.core.synth.depth_scenario import generate_depth

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "ml-depth.yaml"


def _jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def _ts(value: float | str) -> float:
    return value if isinstance(value, float | int) else parse_rfc3339(value)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("depth")
    paths = generate_depth(base / "in", seed=7, rate=3.0)
    manifest = orjson.loads(paths["manifest"].read_bytes())
    replay(load_config(EXAMPLE), {k: paths[k] for k in ("inference", "labels", "features")}, base / "out",
           now=manifest["end"] + 86_400)
    return {"manifest": manifest, "alerts": _jsonl(base / "out" / "alerts.jsonl"),
            "budget": _jsonl(base / "out" / "budget.jsonl")}


def _pages(run: dict, slo: str) -> list[dict]:
    return [a for a in run["alerts"] if a["slo"] == slo and a["state"] == "firing" and a["severity"] == "page"]


def test_each_incident_pages_on_its_slo_in_time(run: dict) -> None:
    for inc in incidents_from_manifest(run["manifest"]):
        pages = [a for s in inc.slos for a in _pages(run, s) if not a["segment"]]
        assert pages, inc.name
        first = min(_ts(a["ts"]) for a in pages)
        assert inc.start < first <= inc.start + inc.detect_within_s, (inc.name, first - inc.start)
        for a in pages:  # every page of these SLOs lands on its incident
            assert inc.start < _ts(a["ts"]) <= inc.end + 30 * 60, (inc.name, a["ts"])


def test_estimated_precision_pages_while_the_labels_are_withheld(run: dict) -> None:
    withheld = run["manifest"]["labels_withheld"][0]
    estimate = min(_ts(a["ts"]) for a in _pages(run, "fraud-estimated-precision"))
    assert withheld["from"] < estimate < withheld["to"]
    # the labelled precision cannot see it: none of those predictions has a label yet
    assert not [a for a in _pages(run, "fraud-precision") if withheld["from"] <= _ts(a["ts"]) < withheld["to"]]
    events = [b for b in run["budget"] if b["slo"] == "fraud-estimated-precision" and not b["segment"]
              and withheld["from"] + 1800 <= _ts(b["ts"]) < withheld["to"]]
    assert events and all(b["value"] < 0.42 for b in events)  # the estimate, about 0.37
    assert len(events[-1]["details"]["expected"]) == 4


def test_what_cannot_see_the_incidents_stays_quiet(run: dict) -> None:
    assert not _pages(run, "fraud-tpr-gap-region")  # the intersection gap averages out per region
    assert not _pages(run, "fraud-feature-drift")  # the correlation flip keeps both marginals


def test_the_estimate_error_shows_estimate_and_realised_and_burns_when_calibration_breaks(run: dict) -> None:
    gap = next(i for i in incidents_from_manifest(run["manifest"]) if i.kind == "intersection_gap")
    page = next(a for a in _pages(run, "fraud-estimate-error") if not a["segment"])
    d = page["details"]
    assert d["metric"] == "precision" and d["labelled"] >= 100
    assert d["estimated"] - d["realised"] > 0.1  # the estimate still believes the scores
    assert page["budget_remaining"] < 1 and gap.start < _ts(page["ts"]) < gap.end + 1800
    quiet = [b["details"] for b in run["budget"] if b["slo"] == "fraud-estimate-error" and not b["segment"]
             and _ts(b["ts"]) < gap.start and b.get("details")]
    assert quiet and all(abs(q["estimated"] - q["realised"]) < 0.1 for q in quiet)


def test_the_intersection_names_a_diagonal_group(run: dict) -> None:
    page = next(a for a in _pages(run, "fraud-equalized-odds") if not a["segment"])
    assert page["fairness"]["worst_group"] in ("eu&65+", "us&18-34")
    assert page["fairness"]["component"] == "tpr"


def test_baseline_from_healthy_history_holds_calibration_and_pca(tmp_path: Path) -> None:
    paths = generate_depth(tmp_path / "h", seed=3, duration_s=2 * 3600.0, rate=3.0, healthy=True)
    out = tmp_path / "baseline.json"
    assert main(["baseline", "--config", str(EXAMPLE), "--inference", str(paths["inference"]),
                 "--labels", str(paths["labels"]), "--out", str(out)]) == 0
    doc = orjson.loads(out.read_bytes())
    calibration = IsotonicCalibration.from_dict(doc["calibration"]["1"])
    # the scenario's score is p ** 0.6: its calibration maps 0.5 back to about 0.5 ** (1 / 0.6) = 0.31
    assert abs(float(calibration.probability([0.5])[0]) - 0.315) < 0.06
    assert set(doc["multivariate_reference"]) == {"amount,merchant_risk"}


@pytest.mark.parametrize(("sli", "field", "message"), [
    ({"estimated_precision": {}}, "slos[0].sli", "score calibration"),
    ({"multivariate_drift": {"features": ["amount"]}}, "slos[0].sli.multivariate_drift.features", "two"),
    ({"multivariate_drift": {"features": ["amount", "card"]}}, "slos[0].sli", "no multivariate reference"),
    ({"equalized_odds_difference": {"attribute": "age"}}, "slos[0].sli.equalized_odds_difference.attribute",
     "not a segment"),
])
def test_bad_config_names_the_field(tmp_path: Path, sli: dict, field: str, message: str) -> None:
    data = load_yaml(EXAMPLE.read_text())
    data["slos"] = [{**data["slos"][0], "sli": sli}]
    if "estimated_precision" in sli:
        data["models"]["fraud"]["baseline"] = str(tmp_path / "no-calibration.json")
        (tmp_path / "no-calibration.json").write_bytes(b'{"reference": {}}')
    with pytest.raises(ConfigError) as e:
        parse_config(data, base_dir=EXAMPLE.parent, source=str(EXAMPLE))
    assert str(EXAMPLE) in str(e.value)
    assert any(p.startswith(field) and message in p for p in e.value.problems), e.value.problems
    bad = tmp_path / "bad.yaml"
    bad.write_text(orjson.dumps(data).decode())
    assert main(["validate", str(bad)]) == 2


@pytest.mark.parametrize(("baseline", "message"), [
    (None, "set models.fraud.baseline"),
    ({"calibration": {"1": {"score": [0.5, 0.2], "probability": [0.1, 0.2]}}}, "calibration '1' is not valid"),
    ({"multivariate_reference": {"a,b": {"features": ["a"]}}}, "multivariate_reference 'a,b' is not valid"),
])
def test_missing_or_broken_baseline_sections_name_the_field(tmp_path: Path, baseline: dict | None,
                                                            message: str) -> None:
    data = load_yaml(EXAMPLE.read_text())
    data["slos"] = [s for s in data["slos"] if s["name"] == "fraud-estimated-precision"]
    if baseline is None:
        del data["models"]["fraud"]["baseline"]
    else:
        (tmp_path / "b.json").write_bytes(orjson.dumps(baseline))
        data["models"]["fraud"]["baseline"] = str(tmp_path / "b.json")
    with pytest.raises(ConfigError) as e:
        parse_config(data, base_dir=EXAMPLE.parent, source=str(EXAMPLE))
    assert any(message in p for p in e.value.problems), e.value.problems


def test_the_demo_shows_the_estimated_page_before_any_label(tmp_path: Path) -> None:
    import io

    from sloguard.apps.demo import run_depth_demo

    stream = io.StringIO()
    run_depth_demo(tmp_path, stream)
    lines = stream.getvalue().splitlines()
    first = next(line for line in lines if " PAGE " in line)
    assert "fraud-estimated-precision" in first and "no label of these predictions yet" in first
    assert any("fraud-estimate-error" in line and "realised" in line for line in lines)
    table = lines[lines.index(next(line for line in lines if line.strip().startswith("incident"))):]
    assert len(table) == 4 and not any("MISSED" in line for line in table)


def test_a_relative_objective_on_an_estimate_says_to_give_a_number() -> None:
    data = load_yaml(EXAMPLE.read_text())
    data["slos"] = [{**data["slos"][0], "objective": {"relative_to_baseline": 0.9}}]
    with pytest.raises(ConfigError) as e:
        parse_config(data, base_dir=EXAMPLE.parent, source=str(EXAMPLE))
    assert any(p.startswith("slos[0].objective") and "give a number" in p for p in e.value.problems)


def test_every_budget_and_alert_of_the_ml_depth_run_is_its_type(run: dict) -> None:
    """Multivariate drift writes `drift` as one object, not the per-feature list: the Structs the
    notifier and controller read with, and the JSON Schemas, must take it (a joint-drift page was
    once refused by both readers)."""
    import json

    import jsonschema
    import msgspec

    from sloguard.core.messages.outputs import Alert, Budget

    schemas = ROOT / "schemas"
    for name, kind, messages in (("budget", Budget, run["budget"]), ("alert", Alert, run["alerts"])):
        schema = json.loads((schemas / f"{name}.schema.json").read_text())
        joint = [m for m in messages if m.get("slo") == "fraud-joint-drift" and isinstance(m.get("drift"), dict)]
        assert joint, f"no multivariate drift {name}: the test would prove nothing"
        for m in messages:
            msgspec.convert(m, type=kind, strict=True)
        for m in joint[:20]:
            jsonschema.validate(m, schema)
