"""`sloguard validate` checks the `rollout:` section too: every bad field named, the policy shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import example_yaml

from sloguard.apps.cli import main

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, rollout: Any, *, example: str = "fraud", **models: Any) -> Path:
    data = example_yaml(example)
    if rollout is None:
        data.pop("rollout", None)
    else:
        data["rollout"] = rollout
    for name, segments in models.items():
        data["models"][name]["segments"] = segments
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("example", ["fraud", "recsys"])
def test_the_example_rollout_policies_validate_and_are_shown(example: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(ROOT / "examples" / f"{example}.yaml")]) == 0
    out, err = capsys.readouterr()
    assert f"canary vs stable of {example} on {example}-availability, {example}-latency: one-sided p < 0.05" in out
    hard = "fairness, infrastructure" if example == "fraud" else "infrastructure"
    assert f"hard stops [{hard}]: a page rolls back" in out
    assert out.rstrip().endswith("OK") and err == ""


def test_every_bad_rollout_field_is_named_at_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(
        tmp_path,
        {
            "policy": {"min_budget_remaining": {"infrastructure": 50}, "hard_stop": ["infra"], "segments": "best"},
            "canary": {"alpha": 0.5, "min_samples": 0, "slos": ["fraud-nope"], "lookback": "soon"},
            "overrides": [{"effect": "freeze", "expires": "2026-01-01T00:00:00Z"}],
            "controller": {"listen": "everywhere", "clock": "sundial"},
            "rollback": True,
        },
    )
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    fields = [re.sub(r"^line \d+: ", "", line.strip()[2:]).split(":")[0] for line in err.splitlines()
              if line.strip().startswith("- ")]
    assert sorted(fields) == sorted([
        "rollout.rollback",
        "rollout.policy.hard_stop",
        "rollout.policy.segments",
        "rollout.canary.alpha",
        "rollout.canary.min_samples",
        "rollout.canary.slos",
        "rollout.canary.lookback",
        "rollout.policy.min_budget_remaining.infrastructure",
        "rollout.overrides[0].reason",
        "rollout.controller.listen",
        "rollout.controller.clock",
    ])
    assert "must be a fraction in [0, 1] (0.5, not 50), got 50" in err
    assert "unknown SLO 'fraud-nope'" in err


def test_a_bad_core_config_is_reported_before_the_rollout_section(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, {"canary": {"alpha": 2}})
    data = yaml.safe_load(path.read_text())
    data["slos"][0]["objective"] = 99.99
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "slos[0].objective" in err and "rollout" not in err


def test_an_unreadable_gate_token_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, {"controller": {"token_file": "missing-token"}})
    assert main(["validate", str(path)]) == 2
    assert "rollout.controller.token_file: cannot read missing-token" in capsys.readouterr().err
    (tmp_path / "missing-token").write_text("s3cret\n")
    assert main(["validate", str(path)]) == 0
    assert "s3cret" not in "".join(capsys.readouterr())


def test_a_model_without_variant_segments_is_warned_about_not_refused(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, {"canary": {"min_samples": 500}}, fraud=["region", "merchant_type"])
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "warning: models.fraud.segments: no variant" in err and out.rstrip().endswith("OK")
    # with canary analysis off there is nothing to compare, so nothing to warn about
    path = write(tmp_path, {"canary": {"enabled": False}}, fraud=["region"])
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "no variant" not in err and "canary analysis off" in out
    # (merchant_type, the fairness attribute, is no longer listed: validate says it was added)
    assert err == ("warning: models.fraud.fairness.attribute: 'merchant_type' is not in models.fraud.segments, so it "
                   "was added to them: every SLO of fraud gets a budget and alerts per merchant_type (list it in "
                   "segments to say so)\n")


def test_overrides_are_listed_and_a_config_without_rollout_shows_none(tmp_path: Path, capsys) -> None:
    override = {"effect": "freeze", "model": "fraud", "reason": "Black Friday peak", "expires": "2026-11-30T00:00:00Z"}
    assert main(["validate", str(write(tmp_path, {"overrides": [override]}))]) == 0
    assert "override #0: freeze fraud until 2026-11-30T00:00:00" in capsys.readouterr().out
    assert main(["validate", str(write(tmp_path, None))]) == 0
    assert "rollout:" not in capsys.readouterr().out
