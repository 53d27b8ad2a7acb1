"""One check of the config file for every command (issue 11): `validate` reports every section's
problems at once, and no command starts on a file `validate` refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sloguard.apps.checks import check_config_file
from sloguard.apps.cli import main
from sloguard.core.spec.model import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def broken_copy(tmp_path: Path, **sections) -> Path:
    data = yaml.safe_load((EXAMPLES / "fraud.yaml").read_text())
    for name, value in sections.items():
        if name == "objective":
            data["slos"][0]["objective"] = value
        else:
            data[name] = value
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for extra in EXAMPLES.iterdir():  # baselines and other files the example names, relative to it
        if extra.is_dir():
            (tmp_path / extra.name).symlink_to(extra)
    return path


def test_every_section_problem_is_reported_at_once_with_its_line(tmp_path):
    path = broken_copy(tmp_path, objective=2, kafka={"bootstrap_servers": 5},
                       notifier={"routes": {"default": []}})
    with pytest.raises(ConfigError) as e:
        check_config_file(path)
    problems = e.value.problems
    assert any(p.startswith("slos[0].objective") for p in problems)
    assert any(p.startswith("kafka.bootstrap_servers") for p in problems)
    assert any(p.startswith("notifier.routes.default") for p in problems)
    assert "line " in str(e.value)


def test_a_valid_example_passes_with_its_rollout_spec():
    checked = check_config_file(EXAMPLES / "fraud.yaml")
    assert checked.config.models and (checked.rollout is not None) == ("rollout" in yaml.safe_load(
        (EXAMPLES / "fraud.yaml").read_text()))


@pytest.mark.parametrize("command", [
    ["validate", "{config}"],
    ["run", "--config", "{config}"],
    ["topics", "create", "--config", "{config}"],
    ["replay", "--config", "{config}", "--inference", "{config}", "--out", "{out}"],
    ["export", "prometheus", "--config", "{config}"],
    ["notifier", "--config", "{config}", "--check"],
])
def test_no_command_starts_on_a_config_validate_refuses(tmp_path, capsys, command):
    """A notifier section with an empty route used to pass `run` and `replay` silently and fail
    only in the notifier; a bad kafka section failed `run` with a traceback."""
    path = broken_copy(tmp_path, notifier={"routes": {"default": []}}, kafka={"bootstrap_servers": 5})
    argv = [a.format(config=path, out=tmp_path / "out") for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "notifier.routes.default" in err and "kafka.bootstrap_servers" in err
    assert "Traceback" not in err


def test_notifier_check_refuses_what_the_notifier_run_refuses(tmp_path, capsys):
    """`notifier --check` said OK to a config without routes, which the real run refuses."""
    data = yaml.safe_load((EXAMPLES / "fraud.yaml").read_text())
    data.pop("notifier", None)
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "baselines").symlink_to(EXAMPLES / "baselines")
    assert main(["notifier", "--config", str(path), "--check"]) == 2
    assert f"{path}: notifier.routes: no routes configured" in capsys.readouterr().err


def test_a_notifier_only_file_is_checked_by_the_notifier_not_refused_for_missing_models(tmp_path, capsys,
                                                                                      monkeypatch):
    """The notifier runs on a file of its own (kafka:, notifier:): the whole-config check must not
    refuse it for having no models, while a bad route in it is still refused by the notifier."""
    monkeypatch.setenv("HOOK", "https://hooks.slack.com/services/T0/B0/x")
    path = tmp_path / "notifier.yaml"
    path.write_text(yaml.safe_dump({"kafka": {"topics": {"alerts": "slo.alerts"}},
                                    "notifier": {"routes": {"default": {"webhook_env": "HOOK"}}}}))
    assert main(["notifier", "--config", str(path), "--check"]) == 0, capsys.readouterr().err
    assert "route default: slack via" in capsys.readouterr().out
    path.write_text(yaml.safe_dump({"notifier": {"routes": {"default": []}}}))
    assert main(["notifier", "--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "notifier.routes.default" in err and "models" not in err
