"""`sloguard backtest` and `sloguard report` end to end on a small generated scenario, the report
opened in real headless Chromium (skipped, with the reason, when Chromium is not installed)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from chromium import Chromium, chromium_binary

from sloguard.apps.cli import main
from sloguard.apps.live_demo import example_config
from sloguard.apps.replay import replay
from sloguard.core.spec.config import load_config
from sloguard.core.synth.scenarios import plan, write_scenario

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SLOGUARD_ARTIFACTS", ROOT / "out" / "artifacts"))
EVENTS = 20_000

pytestmark = pytest.mark.slow


def _jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    base = tmp_path_factory.mktemp("backtest")
    paths = write_scenario(plan("fraud", events=EVENTS, seed=5), base / "in")
    fast_only = example_config("fraud")  # the same SLOs, paged only by the fast burn
    fast_only["alerting"] = {
        "min_events": 100,
        "rules": [
            {"name": "fast-burn", "severity": "page", "burn_rate": 14.4, "long_window": "1h", "short_window": "5m"},
            {"name": "slow-burn", "severity": "ticket", "burn_rate": 1, "long_window": "3d", "short_window": "6h"},
        ],
    }
    variant = base / "fast-only.yaml"
    variant.write_text(yaml.safe_dump(fast_only))
    out = base / "out"
    args = ["backtest", "--config", str(ROOT / "examples" / "fraud.yaml"), "--config", str(variant),
            "--inference", str(paths["inference"]), "--labels", str(paths["labels"]),
            "--features", str(paths["features"]), "--incidents", str(paths["manifest"]), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return {"out": out, "paths": paths, "variant": variant, "json": json.loads((out / "backtest.json").read_text())}


def test_each_config_is_the_plain_replay_of_it(backtest, tmp_path):
    """The worker processes run the replay dataflow itself: outputs are byte-identical."""
    paths = backtest["paths"]
    inputs = {k: paths[k] for k in ("inference", "labels", "features")}
    replay(load_config(backtest["variant"]), inputs, tmp_path)
    for name in ("budget", "alerts", "dead_letter"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (
            backtest["out"] / "fast-only" / f"{name}.jsonl"
        ).read_bytes()


def test_counts_match_the_alert_and_budget_files(backtest):
    for label, result in backtest["json"]["configs"].items():
        alerts = _jsonl(backtest["out"] / label / "alerts.jsonl")
        firing = Counter(a["severity"] for a in alerts if a["state"] == "firing")
        assert (result["pages"], result["tickets"]) == (firing["page"], firing["ticket"])
        assert sum(k["pages"] for k in result["keys"]) == firing["page"]
        last: dict = {}
        for b in _jsonl(backtest["out"] / label / "budget.jsonl"):
            last[(b["slo"], json.dumps(b["segment"], sort_keys=True))] = b["budget_remaining"]
        for k in result["keys"]:
            if k["slo"] != "no-data":
                assert k["budget_remaining_end"] == last[(k["slo"], json.dumps(k["segment"], sort_keys=True))]


def test_fewer_rules_page_less_and_both_configs_are_scored_against_the_manifest(backtest):
    configs = backtest["json"]["configs"]
    assert set(backtest["json"]["ranking"]) == {"fraud", "fast-only"}
    default, fast = configs["fraud"], configs["fast-only"]
    assert not any(a["rule"] == "medium-burn" for a in _jsonl(backtest["out"] / "fast-only" / "alerts.jsonl"))
    assert fast["pages"] < default["pages"]
    manifest = json.loads(backtest["paths"]["manifest"].read_text())
    for result in (default, fast):
        assert [i["incident"] for i in result["incidents"]] == [i["name"] for i in manifest["incidents"]]
        assert result["recall"] >= 0.7  # the scenario's incidents are made to page
        assert 0 < result["precision"] <= 1
        assert result["detection_s"] > 0


def test_report_renders_every_chart_in_chromium_without_errors_or_network(backtest):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    report = backtest["out"] / "report.html"
    text = report.read_text()
    assert text.count("plotly.js v") == 1  # one inlined copy of plotly.js
    assert "<script src=" not in text and report.stat().st_size < 15_000_000
    # one figure per config and SLO of the budget files, counted independently of the report
    expected = sum(
        len({b["slo"] for b in _jsonl(backtest["out"] / label / "budget.jsonl")})
        for label in backtest["json"]["configs"]
    )
    with Chromium(binary) as browser:
        browser.open(report.resolve().as_uri())
        plots = browser.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({"
            " visible: gd.data.filter(t => t.visible !== false).length,"
            " drawn: gd.querySelectorAll('.scatterlayer .trace').length,"
            " svgs: gd.querySelectorAll('svg.main-svg').length,"
            " title: gd.layout.title.text}))"
        )
        shot = browser.screenshot(ARTIFACTS / "backtest-report.png", 2400)
        assert browser.errors() == []
        assert {u.split(":", 1)[0] for u in browser.requests()} <= {"file", "data"}
    assert len(plots) == expected
    for p in plots:
        assert p["svgs"] >= 2, p
        assert p["drawn"] == p["visible"] > 0, p
    assert shot.stat().st_size > 50_000


def test_report_of_a_plain_replay_dir(backtest, tmp_path):
    run = backtest["out"] / "fraud"
    html = tmp_path / "r.html"
    args = ["report", str(run), "--config", str(ROOT / "examples" / "fraud.yaml"), "--html", str(html)]
    assert main([*args, "--incidents", str(backtest["paths"]["manifest"])]) == 0
    text = html.read_text()
    slos = {b["slo"] for b in _jsonl(run / "budget.jsonl")}
    assert f"data-figures='{len(slos)}'" in text
    assert "fast-burn \\u003e= 14.4 (1h & 5m)" in text  # the alert thresholds are drawn


def test_user_errors_exit_2_with_one_line(backtest, tmp_path, capsys):
    bad = tmp_path / "incidents.json"
    bad.write_text(json.dumps({"incidents": [{"name": "x", "start": 1}]}))
    paths = backtest["paths"]
    common = ["--config", str(ROOT / "examples" / "fraud.yaml"), "--out", str(tmp_path / "o")]
    assert main(["backtest", *common, "--inference", str(paths["inference"]), "--incidents", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "incidents.json" in err and "incidents[0]" in err and "Traceback" not in err
    assert main(["backtest", *common, "--inference", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "budget.jsonl" in capsys.readouterr().err


def test_help_does_not_import_plotly():
    code = (
        "import sys, contextlib, io\nfrom sloguard.apps.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for c in (['--help'], ['backtest', '--help'], ['report', '--help']):\n"
        "        try: main(c)\n        except SystemExit: pass\n"
        "print('plotly' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_replay_demo_ends_with_its_report(tmp_path):
    from sloguard.apps.demo import run_replay_demo

    stream = io.StringIO()
    assert run_replay_demo(tmp_path, events=6000, stream=stream) == 0
    assert f"report: {tmp_path}/report.html" in stream.getvalue()
    text = (tmp_path / "report.html").read_text()
    assert "model fraud" in text and "model recsys" in text and "canary-regression" in text
