"""The command line as a user meets it: help that teaches, clear errors, replay and generate end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from sloguard.apps.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_commands_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("validate", "generate", "replay", "demo"):
        assert command in text
    assert "sloguard replay --config examples/fraud.yaml" in text


def test_validate_shows_slos_and_scaled_rules(capsys):
    assert main(["validate", str(ROOT / "examples" / "fraud.yaml")]) == 0
    out = capsys.readouterr().out
    assert "fraud-availability [infrastructure] availability objective 0.9995 over 30d" in out
    assert "page   fast-burn    burn >= 14.4 over 1h and 5m" in out
    assert ("incidents: firing alerts of one owner route with equal [model, severity] are one incident; a segment "
            "with >= 80% of the whole model's bad events explains it; the cause is what started burning first "
            "within 1h") in out
    assert 'inhibit: severity="page" mutes severity="ticket" with equal model, slo' in out
    assert out.rstrip().endswith("OK")


def test_validate_shows_the_configured_incident_policy(tmp_path, capsys):
    text = (ROOT / "examples" / "fraud.yaml").read_text().replace(
        "baselines/fraud.json", str(ROOT / "examples" / "baselines" / "fraud.json"))
    custom = tmp_path / "c.yaml"
    custom.write_text(text + "\nincidents:\n  group_by: [model, slo, severity]\n  cause: {lookback: 30m}\n"
                      "  inhibit: []\n")
    assert main(["validate", str(custom)]) == 0
    out = capsys.readouterr().out
    assert "equal [model, slo, severity]" in out and "within 30m" in out and "  inhibit: none" in out
    off = tmp_path / "off.yaml"
    off.write_text(text + "\nincidents: {enabled: false}\n")
    assert main(["validate", str(off)]) == 0
    assert "incidents: off" in capsys.readouterr().out


def test_validate_shows_where_the_work_runs(tmp_path, capsys):
    assert main(["validate", str(ROOT / "examples" / "fraud.yaml")]) == 0
    assert "scale: each model's events in 8 shards, its judge in one part per worker" in capsys.readouterr().out
    text = (ROOT / "examples" / "fraud.yaml").read_text().replace(
        "baselines/fraud.json", str(ROOT / "examples" / "baselines" / "fraud.json"))
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(text + "\nscale: {shards: 16, judge_parts: 3}\n")
    assert main(["validate", str(pinned)]) == 0
    assert "scale: each model's events in 16 shards, its judge in 3 parts" in capsys.readouterr().out


def test_a_bad_config_fails_with_the_path_of_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {m: {}}\nslos:\n  - {name: a, model: m, dimension: infrastructure, sli: availability,"
                   " objective: 99.9, window: 30d}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "slos[0].objective: a ratio SLI's objective must be in (0, 1), got 99.9" in err


def test_replay_refuses_a_missing_input_file(tmp_path, capsys):
    code = main(["replay", "--config", str(ROOT / "examples" / "fraud.yaml"), "--inference",
                 str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out")])
    assert code == 2 and "no such file: --inference" in capsys.readouterr().err


def test_generate_then_replay_writes_the_three_outputs(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    assert main(["generate", "--scenario", "fraud", "--events", "50000", "--seed", "3", "--out", str(data)]) == 0
    manifest = orjson.loads((data / "manifest.json").read_bytes())
    assert manifest["events"] == 50000 and manifest["incidents"]
    assert main(["replay", "--config", str(ROOT / "examples" / "fraud.yaml"), "--inference",
                 str(data / "inference.jsonl"), "--labels", str(data / "labels.jsonl"), "--features",
                 str(data / "features.jsonl"), "--out", str(out), "--quiet"]) == 0
    for name in ("budget", "alerts", "dead_letter"):
        assert (out / f"{name}.jsonl").stat().st_size > 0


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).parent / "sloguard"
    result = subprocess.run([str(exe), "validate", str(ROOT / "examples" / "recsys.yaml")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and "recsys-freshness" in result.stdout


def test_generate_with_a_duration_too_short_for_the_incidents_writes_healthy_traffic(tmp_path, capsys):
    """Issue 15: `generate --duration 20m` ended in a traceback (the incidents need 12h30m)."""
    assert main(["generate", "--scenario", "fraud", "--duration", "20m", "--events", "2000",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "too short for the fraud scenario's incidents" in err and "--duration 12h30m or more" in err
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert manifest["incidents"] == [] and manifest["end"] - manifest["start"] == 1200
    ts = [orjson.loads(line)["ts"] for line in (tmp_path / "inference.jsonl").read_bytes().splitlines()]
    assert len(ts) == 2000
    assert main(["generate", "--scenario", "fraud", "--duration", "20 minutes", "--out", str(tmp_path)]) == 2
    assert "error: --duration: not a duration" in capsys.readouterr().err


def test_help_does_not_load_scipy() -> None:
    """`sloguard --help` and config validation answer fast: scipy (~1 s to import) loads only when a
    statistic is computed."""
    code = ("import sys, contextlib, io\nfrom sloguard.apps import cli\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    cli.main(['--help'])\n"
            "from sloguard.core.spec.config import load_config\n"
            "load_config(__import__('pathlib').Path('examples/fraud.yaml'))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("extra", "problem"), [
    ("kafka: {bootstrap_servers: 5}", "kafka.bootstrap_servers: must be a string"),
    ("kafka: {topics: {inference: 'bad topic!'}}", "kafka.topics.inference: 'bad topic!' is not a legal Kafka topic"),
    ("health: {weights: {quality: 1}}", "health: health weights are per model"),
    ("notifier: {routes: {sre-oncall: []}}", "notifier.routes.sre-oncall: needs at least one target"),
    ("notifier: {min_intervall: 2}", "notifier.min_intervall: unknown key"),
])
def test_validate_refuses_what_the_commands_would_refuse(tmp_path, capsys, extra: str, problem: str) -> None:
    """`validate` reads the kafka and notifier sections as `run` and `notifier` do, so it never says OK
    to a config a command rejects."""
    path = tmp_path / "c.yaml"
    path.write_text((ROOT / "examples" / "fraud.yaml").read_text() + "\n" + extra + "\n")
    (tmp_path / "baselines").symlink_to(ROOT / "examples" / "baselines")
    assert main(["validate", str(path)]) == 2
    assert problem in capsys.readouterr().err


def test_version_prints_the_package_version(capsys):
    from sloguard import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"sloguard {__version__}"


@pytest.mark.parametrize("command", [["run"], ["controller"], ["topics", "create"]])
def test_a_bad_kafka_section_is_one_line_naming_file_and_field_exit_2(tmp_path, command):
    """User errors end in one line on stderr and exit 2, never a traceback (issue 11): the kafka
    section of the config used to raise KafkaConfigError through `run`, `controller`, `topics create`."""
    text = (ROOT / "examples" / "fraud.yaml").read_text().replace(
        "baselines/fraud.json", str(ROOT / "examples" / "baselines" / "fraud.json"))
    config = tmp_path / "c.yaml"
    config.write_text(text + "\nkafka:\n  bootstrap_servers: 5\n")
    done = subprocess.run([sys.executable, "-m", "sloguard.apps.cli", *command, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {config}: line 171: kafka.bootstrap_servers: must be a string or a list of 'host:port' strings"]


def test_notifier_preview_of_a_missing_alerts_file_exits_2(tmp_path, capsys):
    assert main(["notifier", "--alerts", str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --alerts: no such file: {tmp_path / 'missing.jsonl'}"


def test_every_option_of_every_command_says_what_it_is():
    import argparse

    from sloguard.apps.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(p, f"{name} {sub}")
            elif not action.help and "-h" not in action.option_strings:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "sloguard")
    assert missing == []


def test_replay_into_a_pipe_writes_no_progress_line(tmp_path):
    """Progress redrawn with carriage returns is for a terminal: a CI log or a pipe gets the summary only."""
    data = tmp_path / "data"
    assert main(["generate", "--scenario", "fraud", "--events", "3000", "--seed", "3", "--healthy",
                 "--duration", "1h", "--out", str(data)]) == 0
    done = subprocess.run([sys.executable, "-m", "sloguard.apps.cli", "replay", "--config",
                           str(ROOT / "examples" / "fraud.yaml"), "--inference", str(data / "inference.jsonl"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "replay:" not in done.stderr
    assert "budget" in done.stdout  # the summary line still says what was written


def test_duration_flags_read_the_config_s_syntax_or_seconds(capsys):
    """One duration syntax everywhere (issue 11): flags take 90s, 5m, 1h30m as the config does, or
    plain seconds as before; anything else is one line naming the flag, exit 2."""
    from sloguard.apps.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["notifier", "--stop-after", "5m"]).stop_after == 300.0
    assert parser.parse_args(["notifier", "--stop-after", "2.5"]).stop_after == 2.5
    assert parser.parse_args(["run", "--config", "c.yaml", "--snapshot-interval", "1m"]).snapshot_interval == 60.0
    assert parser.parse_args(["demo", "--duration", "2m"]).duration == 120.0
    run = ["run", "--config", "c.yaml", "--heartbeat"]
    assert parser.parse_args([*run, "1m"]).heartbeat == 60.0
    assert parser.parse_args([*run, "45"]).heartbeat == 45.0
    assert parser.parse_args([*run, "off"]).heartbeat == parser.parse_args([*run, "0"]).heartbeat == 0.0
    assert parser.parse_args(run[:3]).heartbeat == 30.0
    with pytest.raises(SystemExit):
        parser.parse_args([*run, "-5s"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["notifier", "--stop-after", "soon"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --stop-after: 'soon' is not a duration (e.g. 90s, 5m, 1h30m, or seconds)" in err


def test_every_environment_variable_a_command_reads_is_named_in_its_help():
    """CLI conventions (issue 11): a setting that can come from the environment says so in --help.
    The names are read from the source, so a new variable without a word in the help fails here."""
    import re

    from sloguard.apps.cli import build_parser

    sources = [*(ROOT / "sloguard" / "apps").glob("*.py"), ROOT / "connectors" / "controller.py"]
    read = set()
    for path in sources:
        read |= set(re.findall(r"environ(?:\.get)?[\[(]\"([A-Z][A-Z0-9_]+)\"", path.read_text()))
        read |= set(re.findall(r"token_env: (SLOGUARD_[A-Z_]+)", path.read_text()))
    read.discard("PATH")
    assert {"SLOGUARD_DEMO_SLACK_WEBHOOK", "SLOGUARD_GATE_TOKEN"} <= read
    parser = build_parser()
    helps = {name: sub.format_help().replace("\n", " ")
             for action in parser._subparsers._group_actions for name, sub in action.choices.items()}
    for name in read:
        assert any(name in text for text in helps.values()), f"${name} is read but no --help names it"
    assert "KAFKA_BOOTSTRAP_SERVERS" in helps["run"] and "SLOGUARD_KAFKA_" in helps["run"]
