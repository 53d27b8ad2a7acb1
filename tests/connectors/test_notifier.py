"""The notifier against a local Slack-like webhook server and the real (embedded) Kafka broker:
delivery exactly once per notice across a crash and restart, retries (429 Retry-After, 5xx, slow
answers), permanent failures dead-lettered, config errors that name the field, and webhook URLs
absent from every log line and every byte of output."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from factories import example_yaml
from slack_server import Answer, FakeSlack, notices_in, rate_limited, server_error, slow
from slack_server import example_alerts as examples

from sloguard.apps.notifier import main
from sloguard.connectors.notifier import run_notifier
from sloguard.connectors.notifier_config import (
    NotifierConfigError,
    build_senders,
    load_notifier_config,
    parse_notifier_section,
)
from sloguard.connectors.notifier_messages import parse_alert
from sloguard.connectors.notifier_preview import preview_alerts
from sloguard.connectors.slack import SlackWebhookSender
from sloguard.connectors.webhooks import GenericWebhookSender, Redactor, Secret
from sloguard.core.messages.outputs import DeadLetter
from sloguard.core.notify.notify_policy import Batch, Pending

SESSION_MS = 6000


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def one(alert: dict[str, Any], kind: str | None = None) -> Batch:
    kind = kind or alert["state"]
    return Batch("sre", kind, alert["model"], [Pending("sre", alert, None)], 0.0, 0.0)


def tokens(*urls: str) -> list[str]:
    """The secret parts of webhook URLs: the whole URL and its last path segment."""
    return [u for url in urls for u in (url, url.rsplit("/", 1)[1])]


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for s in secrets:
        assert s not in text, "a webhook secret leaked"


# -- the Slack sender ------------------------------------------------------------------------------


def test_429_waits_for_retry_after_and_5xx_back_off_then_the_post_succeeds(slack: FakeSlack) -> None:
    url = slack.webhook()
    sleeps: list[float] = []
    sender = SlackWebhookSender("sre", Secret(url, "env SLACK_SRE"), sleep=sleeps.append, max_retries=4,
                                backoff_factor=0.5)
    slack.script(url, rate_limited(7), server_error(500), server_error(502), Answer(200))
    result = sender.send(one(examples()[0]))
    assert result.ok
    assert [r.status for r in slack.received(url, None)] == [429, 500, 502, 200]
    assert sleeps[0] == 7.0  # Retry-After honoured exactly
    assert 0.5 <= sleeps[1] < 2.0 and 1.0 <= sleeps[2] < 3.0  # exponential backoff (+ jitter)


def test_retries_are_bounded_then_the_failure_is_transient(slack: FakeSlack) -> None:
    url = slack.webhook()
    sender = SlackWebhookSender("sre", Secret(url, "env S"), sleep=lambda s: None, max_retries=2)
    slack.always(url, server_error(503))
    result = sender.send(one(examples()[0]))
    assert (result.status, result.http_status) == ("transient", 503)
    assert len(slack.received(url, None)) == 3


def test_a_long_retry_after_is_left_to_the_scheduler_instead_of_blocking(slack: FakeSlack) -> None:
    url = slack.webhook()
    sleeps: list[float] = []
    sender = SlackWebhookSender("sre", Secret(url, "env S"), sleep=sleeps.append, max_retry_after_s=60)
    slack.script(url, rate_limited(600))
    result = sender.send(one(examples()[0]))
    assert (result.status, result.retry_after_s, sleeps) == ("transient", 600.0, [])


@pytest.mark.parametrize(("status", "body", "hint"), [
    (404, "no_service", "the webhook was disabled or removed"),
    (403, "action_prohibited", "a workspace admin restricted posting"),
    (410, "channel_is_archived", "the channel is archived"),
    (400, "invalid_payload", "Slack could not read the message"),
])
def test_permanent_errors_say_what_to_do_without_the_url(slack: FakeSlack, status: int, body: str,
                                                         hint: str) -> None:
    url = slack.webhook()
    slack.always(url, Answer(status, body))
    result = SlackWebhookSender("sre", Secret(url, "env SLACK_SRE"), sleep=lambda s: None).send(one(examples()[0]))
    assert result.permanent and result.http_status == status
    assert f"HTTP {status} {body}" in result.reason and hint in result.reason
    assert_no_secret(result.reason, tokens(url))
    assert len(slack.received(url, None)) == (2 if status == 400 else 1)  # 400: one plain-text retry


def test_blocks_slack_rejects_are_resent_as_plain_text(slack: FakeSlack) -> None:
    url = slack.webhook()
    slack.script(url, Answer(400, "invalid_blocks"))
    result = SlackWebhookSender("sre", Secret(url, "env S")).send(one(examples()[0]))
    assert result.ok and "sent as plain text" in result.reason
    [accepted] = slack.received(url)
    body = accepted.json
    assert "blocks" not in body and "fast-burn on fraud-availability" in body["text"]


def test_slow_answers_are_waited_for_and_timeouts_retried(slack: FakeSlack) -> None:
    url = slack.webhook()
    sender = SlackWebhookSender("sre", Secret(url, "env S"), timeout_s=1.0, sleep=lambda s: None)
    slack.script(url, slow(0.4))
    assert sender.send(one(examples()[0])).ok
    assert len(slack.received(url, None)) == 1
    slack.script(url, slow(1.5))  # past the timeout: Slack may still have posted it (at-least-once)
    t0 = time.monotonic()
    assert sender.send(one(examples()[0])).ok
    assert time.monotonic() - t0 < 2.5
    assert len(slack.received(url, None)) == 3


def test_an_unreachable_webhook_is_transient_and_its_url_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:9/services/T000/B000/abcdefghijklmnopqrstuvwx"
    slack_result = SlackWebhookSender("sre", Secret(url, "env S"), sleep=lambda s: None, timeout_s=1,
                                      max_retries=1).send(one(examples()[0]))
    redactor = Redactor([url]).install()
    try:
        hook = GenericWebhookSender("pager", Secret(url, "env P"), max_retries=1, backoff_factor=0.01, timeout_s=1)
        hook_result = hook.send([examples()[0]])
    finally:
        redactor.uninstall()
    assert slack_result.status == hook_result.status == "transient"
    assert "Connection refused" in hook_result.reason or "ConnectionError" in hook_result.reason
    assert_no_secret(slack_result.reason + hook_result.reason + caplog.text, tokens(url))


def test_the_generic_webhook_gets_the_alert_json_unchanged(slack: FakeSlack) -> None:
    url = slack.webhook()
    alert = examples()[3]  # slo and version are null: they must stay null, not vanish
    token = Secret("Token s3cr3t-value", "env T")
    sender = GenericWebhookSender("pager", Secret(url, "env P"), headers={"Authorization": token}, backoff_factor=0.01)
    slack.script(url, rate_limited(1), server_error(503))
    t0 = time.monotonic()
    assert sender.send([alert]).ok
    assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 honoured
    [got] = slack.received(url)
    assert got.json == alert
    assert got.headers["Authorization"] == "Token s3cr3t-value"
    assert "s3cr3t" not in repr(sender)
    slack.always(url, Answer(410, "gone"))
    result = sender.send([alert])
    assert result.permanent and result.http_status == 410


def test_secrets_never_print_themselves() -> None:
    url = "https://hooks.slack.com/services/T0/B0/zyxwvutsrqponmlkjihgfedc"
    secret = Secret(url, "env SLACK_SRE")
    assert repr(secret) == str(secret) == "<secret from env SLACK_SRE>"
    sender = SlackWebhookSender("sre", secret)
    assert_no_secret(repr(sender) + str(vars(sender).get("_url")), tokens(url))
    r = Redactor([url])
    assert r.redact(f"POST /services/T0/B0/zyxwvutsrqponmlkjihgfedc to {url}") == "POST <redacted> to <redacted>"
    assert r.redact("services and hooks are fine words") == "services and hooks are fine words"


# -- config ----------------------------------------------------------------------------------------


def test_config_errors_name_the_field() -> None:
    with pytest.raises(NotifierConfigError) as e:
        parse_notifier_section({
            "group_window": "soon", "max_group_size": 0, "bogus": 1,
            "routes": {"sre": {"webhook_url": "https://hooks.slack.com/x"},
                       "data": {"type": "email", "webhook_env": "X"},
                       "both": {"webhook_env": "A", "webhook_file": "/f"},
                       "bad-env": {"webhook_env": "not a name"}},
        })
    text = str(e.value)
    for expected in ("notifier.group_window: not a duration", "notifier.max_group_size: must be an integer >= 1",
                     "notifier.bogus: unknown key",
                     "notifier.routes.sre.webhook_url: webhook URLs are secrets and do not belong in the config",
                     "notifier.routes.data.type: must be slack, slack_api or webhook",
                     "notifier.routes.both: give exactly one of webhook_env",
                     "notifier.routes.bad-env.webhook_env: must be an environment variable name"):
        assert expected in text
    assert "hooks.slack.com" not in text


def test_missing_secrets_are_named_by_variable_or_file_not_value(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    settings = parse_notifier_section({"routes": {
        "sre": {"webhook_env": "SLACK_SRE"}, "data": {"webhook_file": str(tmp_path / "missing")},
        "e": {"webhook_file": str(empty)}, "plain": {"webhook_env": "NOT_A_URL"}}})
    with pytest.raises(NotifierConfigError) as e:
        build_senders(settings, env={"NOT_A_URL": "hooks.slack.com/services/T/B/abcdefghijklmnop"})
    text = str(e.value)
    assert "notifier.routes.sre: environment variable SLACK_SRE is not set" in text
    assert f"notifier.routes.data: cannot read {tmp_path / 'missing'}" in text
    assert f"notifier.routes.e: {empty} is empty" in text
    assert "notifier.routes.plain: the URL from env NOT_A_URL is not an http(s) URL" in text
    assert "abcdefghijklmnop" not in text


def test_the_section_comes_from_the_sloguard_config_or_a_separate_file(tmp_path: Path) -> None:
    main_cfg = tmp_path / "fraud.yaml"
    data = example_yaml("fraud")
    data["notifier"] = {"group_window": "45s", "routes": {"default": {"webhook_env": "SLACK_DEFAULT"}}}
    data["kafka"] = {"topics": {"alerts": "my.alerts"}}
    main_cfg.write_text(yaml.safe_dump(data))
    cfg = load_notifier_config(main_cfg)
    assert cfg.settings.policy.group_window_s == 45.0
    assert cfg.owner_routes == {
        "infrastructure": "sre-oncall",
        "data": "data-eng",
        "quality": "fraud-ml",
        "drift": "fraud-ml",
        "fairness": "responsible-ai",
    }
    assert (cfg.alerts_topic, cfg.dead_letter_topic) == ("my.alerts", "slo.dead-letter")
    separate = tmp_path / "notifier.yaml"
    separate.write_text("group_window: 0\ndead_letter_topic: notifier.dead-letter\n"
                        "routes: {sre-oncall: {webhook_env: S}}\n")
    cfg = load_notifier_config(main_cfg, notifier_path=separate)
    assert cfg.settings.policy.group_window_s == 0.0
    assert set(cfg.settings.routes) == {"sre-oncall"}
    assert cfg.dead_letter_topic == "notifier.dead-letter"


def test_parse_alert_rejects_what_cannot_be_delivered_with_a_reason() -> None:
    assert parse_alert(orjson.dumps(examples()[0]))[0] is not None
    bad = {
        b"{not json": "malformed JSON",
        b"[1]": "message must be a JSON object",
        orjson.dumps({**examples()[0], "state": "maybe"}): "state: must be firing or resolved",
        orjson.dumps({**examples()[0], "started_at": "yesterday"}): "started_at: must be an RFC 3339",
        orjson.dumps({**examples()[0], "type": "budget"}): "type: must be 'alert'",
        # checked against the Alert type the flow writes: wrong types and missing fields by path
        orjson.dumps({**examples()[0], "burn_rates": {"1h": "fast"}}): "burn_rates[...]: expected float, got str",
        orjson.dumps({k: v for k, v in examples()[0].items() if k != "summary"}): "summary: required field missing",
        orjson.dumps({**examples()[0], "dimension": "vibes"}): "dimension: invalid enum value 'vibes'",
    }
    for raw, reason in bad.items():
        alert, error = parse_alert(raw)
        assert alert is None and error.startswith(reason)


def test_a_field_a_newer_writer_adds_does_not_dead_letter_a_page() -> None:
    """Readers ignore unknown top-level fields, so upgrading the flow before the notifier keeps
    pages flowing; every example alert and incident of the schemas reads cleanly."""
    from sloguard.connectors.notifier_messages import parse_incident

    assert parse_alert(orjson.dumps({**examples()[0], "added_in_a_later_version": {"x": 1}}))[1] is None
    lines = (Path(__file__).resolve().parents[2] / "schemas" / "examples" / "incident.valid.jsonl").read_text()
    incidents = [orjson.loads(line) for line in lines.splitlines() if line.strip()]
    assert incidents and all(parse_incident(orjson.dumps(i)) == (i, None) for i in incidents)
    member = {k: v for k, v in incidents[0]["members"][0].items() if k != "rule"}
    assert parse_incident(orjson.dumps({**incidents[0], "members": [member]}))[1] == (
        "members[0].rule: required field missing")


def test_preview_groups_alerts_as_the_notifier_would(capsys: pytest.CaptureFixture[str]) -> None:
    alerts = examples()
    batches = preview_alerts(alerts)
    out = capsys.readouterr().out
    assert sum(len(b.items) for b in batches) == len(alerts)
    assert "[sre-oncall] 🔴 PAGE: fast-burn on fraud-availability (fraud, region=eu)" in out
    assert "✅ RESOLVED" in out


def test_cli_previews_an_alerts_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in examples()) + "\nnot json\n")
    assert main(["--alerts", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{len(examples())} alerts -> " in captured.out
    assert "skipped a line" in captured.err


def test_cli_check_reports_routes_and_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "n.yaml"
    cfg.write_text("notifier: {routes: {default: {webhook_env: SLACK_DEFAULT_TEST}}}\n")
    assert main(["--notifier-config", str(cfg), "--check"]) == 2
    assert "environment variable SLACK_DEFAULT_TEST is not set" in capsys.readouterr().err
    secret = "https://hooks.slack.com/services/T1/B1/qwertyuiopasdfghjklzxcvb"
    monkeypatch.setenv("SLACK_DEFAULT_TEST", secret)
    assert main(["--notifier-config", str(cfg), "--check"]) == 0
    captured = capsys.readouterr()
    assert "route default: slack via env SLACK_DEFAULT_TEST (ok)" in captured.out
    assert_no_secret(captured.out + captured.err, tokens(secret))


# -- end to end on Kafka ---------------------------------------------------------------------------


def episode_alerts(n: int) -> list[dict[str, Any]]:
    """n alert episodes, each a firing then a resolved message, spread over owners and models."""
    owners = ["sre-oncall", "data-eng", "pager", "unknown-team", "gone"]
    out = []
    base = examples()[0]
    for i in range(n):
        common = {**base, "id": f"{i:016x}", "owner": owners[i % len(owners)], "model": ("fraud", "recsys")[i % 2],
                  "segment": {"region": f"r{i % 3}"}, "started_at": f"2026-01-01T00:{i % 60:02d}:00.000Z"}
        out.append({**common, "state": "firing", "ts": common["started_at"]})
        out.append({**common, "state": "resolved", "ts": f"2026-01-01T01:{i % 60:02d}:00.000Z"})
    return out


def produce(bootstrap: str, topic: str, messages: list[bytes | dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for m in messages:
        key = m["id"].encode() if isinstance(m, dict) else b"junk"
        producer.produce(topic, key=key, value=orjson.dumps(m) if isinstance(m, dict) else m)
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 20,
             raw: bool = False) -> list[dict]:
    """Messages of `topic` from the beginning (JSON values, or {partition, offset} when `raw`)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=0.5):
                if m.error() is None:
                    out.append({"partition": m.partition(), "offset": m.offset()} if raw else orjson.loads(m.value()))
    finally:
        consumer.close()
    return out


class SimulatedCrash(RuntimeError):
    """The notifier dies after saving its ledger and before committing its offsets."""


def start(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def body() -> None:
        try:
            result["stats"] = target()
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.kafka
def test_every_notice_is_delivered_exactly_once_to_its_route_across_a_crash_and_restart(
    kafka_bootstrap: str, topic_factory: Callable[..., str], slack: FakeSlack, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    alerts_topic = topic_factory("notifier-alerts", partitions=2)
    dl_topic = topic_factory("notifier-dead-letter")
    hooks = {name: slack.webhook() for name in ("sre", "data", "pager", "pager_hook", "default", "gone")}
    slack.always(hooks["gone"], Answer(404, "no_service"))
    (tmp_path / "gone-url").write_text(hooks["gone"] + "\n")
    env = {"SLACK_SRE": hooks["sre"], "SLACK_DATA": hooks["data"], "SLACK_PAGER": hooks["pager"],
           "PAGER_HOOK": hooks["pager_hook"], "PAGER_TOKEN": "Token pager-s3cret-token",
           "SLACK_DEFAULT": hooks["default"]}
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"topics": {"alerts": alerts_topic, "dead_letter": dl_topic}},
        "notifier": {
            "source": "alerts", "min_interval": 0,
            "group_window": 0.3, "reminder_interval": 0, "retry_initial": 0.2, "retry_max": 1,
            "max_retries": 2, "backoff_factor": 0.01, "max_retry_after": 2, "timeout": 2,
            "state_file": str(tmp_path / "state" / "notifier.json"),
            "routes": {
                "sre-oncall": {"webhook_env": "SLACK_SRE"},
                "data-eng": {"webhook_env": "SLACK_DATA"},
                "pager": [{"webhook_env": "SLACK_PAGER"},
                          {"type": "webhook", "webhook_env": "PAGER_HOOK",
                           "headers_env": {"Authorization": "PAGER_TOKEN"}}],
                "gone": {"webhook_file": str(tmp_path / "gone-url")},
                "default": {"webhook_env": "SLACK_DEFAULT"},
            },
        },
    }))
    # transient trouble on the way: a 429 and a 500 for sre, a 503 for the generic webhook
    slack.script(hooks["sre"], rate_limited(1), server_error(500))
    slack.script(hooks["pager_hook"], server_error(503))

    alerts = episode_alerts(40)  # 80 notices
    first, second = alerts[:50], alerts[50:]
    produce(kafka_bootstrap, alerts_topic, [*first, b"{not json"])

    def crash_once_something_was_posted(offsets: dict) -> None:
        if slack.received(hooks["data"]) or slack.received(hooks["default"]):
            raise SimulatedCrash("killed between saving the ledger and committing")

    def run(**kw: Any) -> Any:
        return run_notifier(config, bootstrap=kafka_bootstrap, env=env, session_timeout_ms=SESSION_MS,
                            poll_s=0.1, **kw)

    thread, result = start(lambda: run(on_commit=crash_once_something_was_posted))
    thread.join(30)
    assert isinstance(result.get("error"), SimulatedCrash), result
    delivered_before_restart = len(slack.received(hooks["sre"]))

    # upstream redelivers a few alerts (at-least-once producers), then the stream goes on
    produce(kafka_bootstrap, alerts_topic, [*second, *first[:6]])
    stop = threading.Event()
    t0 = time.monotonic()
    thread, result = start(lambda: run(stop=stop))

    def slack_notices(name: str) -> Counter:
        got: Counter = Counter()
        for r in slack.received(hooks[name]):
            for state, aid in notices_in(r.json):
                got[(aid, state)] += 1
        return got

    def expected(owner: str) -> Counter:
        return Counter((a["id"], a["state"]) for a in alerts if a["owner"] == owner)

    routes = {"sre": "sre-oncall", "data": "data-eng", "pager": "pager", "default": "unknown-team"}
    wait_until(lambda: all(sum(slack_notices(h).values()) >= len(expected(o)) for h, o in routes.items())
               and len(slack.received(hooks["pager_hook"])) >= len(expected("pager")), 45, "all deliveries")
    elapsed = time.monotonic() - t0
    time.sleep(1.0)  # anything extra (a duplicate) would arrive now
    stop.set()
    thread.join(30)
    assert "error" not in result, result
    stats = result["stats"]

    for hook, owner in routes.items():
        assert slack_notices(hook) == expected(owner), hook  # each firing and resolve exactly once
    generic = Counter((r.json["id"], r.json["state"]) for r in slack.received(hooks["pager_hook"]))
    assert generic == expected("pager")
    assert all(r.headers["Authorization"] == "Token pager-s3cret-token" for r in slack.received(hooks["pager_hook"]))
    assert delivered_before_restart > 0 and stats.duplicates >= 6

    # the gone route's notices and the malformed message are dead letters with actionable reasons
    gone = expected("gone")
    dead = read_all(kafka_bootstrap, dl_topic, 1, len(gone) + 2)
    malformed = {(d["topic"], d["partition"], d["offset"]) for d in dead if "malformed JSON" in d["error"]}
    assert len(malformed) == 1  # (at least once: a crash before its commit publishes it again)
    gone_dead = [d for d in dead if d.get("route") == "gone"]
    assert Counter((d["alert_id"], json.loads(d["payload"])["state"]) for d in gone_dead) == gone
    assert all("HTTP 404 no_service" in d["error"] and "create a new incoming webhook" in d["error"]
               and d["topic"] == alerts_topic and d["offset"] >= 0 for d in gone_dead)

    # nothing left behind: the group's committed offsets reach the end of every partition
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "sloguard-notifier"})
    try:
        committed = probe.committed([TopicPartition(alerts_topic, p) for p in range(2)], timeout=10)
    finally:
        probe.close()
    ends = Counter(m["partition"] for m in read_all(kafka_bootstrap, alerts_topic, 2, 87, raw=True))
    assert sum(ends.values()) == 87
    assert [c.offset for c in committed] == [ends[0], ends[1]]

    # webhook URLs appear in no log record, no output and no dead letter
    out = capsys.readouterr()
    everything = caplog.text + out.out + out.err + json.dumps(dead)
    assert_no_secret(everything, [*tokens(*hooks.values()), "pager-s3cret-token"])
    print(f"\nnotifier: {len(alerts)} notices, {stats.messages_sent} messages after restart in "
          f"{elapsed:.1f} s; stats {stats.as_dict()}")


# -- the driver with a scripted consumer and an injected clock -------------------------------------


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def error(self) -> None:
        return None


class FakeConsumer:
    """Hands out queued messages; records commits and pauses (no broker)."""

    def __init__(self) -> None:
        self.queue: list[FakeMessage] = []
        self.commits: list[dict[tuple[str, int], int]] = []
        self.paused = False

    def add(self, *alerts: dict[str, Any] | bytes) -> None:
        for a in alerts:
            value = a if isinstance(a, bytes) else orjson.dumps(a)
            self.queue.append(FakeMessage("alerts", 0, len(self.queue), value))

    def subscribe(self, topics: list[str], **kw: Any) -> None:
        pass

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        if self.paused:
            return []
        out, self.queue = self.queue, []
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("alerts", 0)]

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused = True

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused = False

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, on_delivery: Callable) -> None:
        self.sent.append(orjson.loads(value))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


class Clock:
    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def driver(slack: FakeSlack, section: dict[str, Any], tmp_path: Path, clock: Clock,
           consumer: FakeConsumer | None = None) -> tuple[Any, FakeConsumer, FakeProducer, str]:
    from sloguard.connectors.notifier import Notifier
    from sloguard.connectors.notifier_ledger import StateFile

    url = slack.webhook()
    settings = parse_notifier_section({"source": "alerts", "min_interval": 0,
                                       "routes": {"default": {"webhook_env": "HOOK"}}, **section})
    senders, redactor = build_senders(settings, env={"HOOK": url}, sleep=lambda s: None, clock=clock)
    consumer = consumer or FakeConsumer()
    producer = FakeProducer()
    n = Notifier(settings, senders, consumer=consumer, producer=producer, alerts_topic="alerts",
                 dead_letter_topic="dl", state=StateFile(tmp_path / "state.json"), clock=clock, redactor=redactor)
    return n, consumer, producer, url


def step(n: Any) -> None:
    """One loop iteration, as `Notifier.run` does it."""
    n._flow_control()
    for m in n.consumer.consume(500, timeout=0):
        n.handle(m, n.clock())
    n.pump(n.clock())
    n.commit()


def test_offsets_are_committed_only_after_slack_accepted(slack: FakeSlack, tmp_path: Path) -> None:
    clock = Clock()
    n, consumer, _, url = driver(slack, {"group_window": "30s", "max_retries": 0, "retry_initial": "10s"},
                                 tmp_path, clock)
    firing = examples()[0]
    consumer.add(firing, {**firing, "id": "b2"})
    step(n)
    assert consumer.commits == [] and slack.received(url, None) == []  # grouping: nothing due yet
    slack.script(url, server_error(500))
    clock.t += 30
    step(n)
    assert consumer.commits == []  # Slack failed: nothing committed, batch rescheduled in 10 s
    assert n.core.next_due_at() == clock.t + 10
    clock.t += 10
    step(n)
    [accepted] = slack.received(url)
    assert [i for _, i in notices_in(accepted.json)] == [firing["id"], "b2"]
    assert consumer.commits == [{("alerts", 0): 2}]
    n.close()


def test_long_firing_pages_get_reminders_on_the_injected_clock(slack: FakeSlack, tmp_path: Path) -> None:
    clock = Clock()
    n, consumer, _, url = driver(slack, {"group_window": 0, "reminder_interval": "4h"}, tmp_path, clock)
    firing, resolved = examples()[:2]
    consumer.add(firing)
    step(n)
    clock.t += 4 * 3600 - 1
    step(n)
    assert len(slack.received(url)) == 1
    clock.t += 1
    step(n)
    reminder = slack.received(url)[-1].json
    assert reminder["blocks"][0]["text"]["text"].startswith("⏰ STILL FIRING")
    assert notices_in(reminder) == [("still firing", firing["id"])]
    consumer.add(resolved)
    step(n)
    clock.t += 8 * 3600
    step(n)
    kinds = [notices_in(r.json)[0][0] for r in slack.received(url)]
    assert kinds == ["firing", "still firing", "resolved"]
    n.close()


def test_the_ledger_on_disk_suppresses_repeats_after_a_restart(slack: FakeSlack, tmp_path: Path) -> None:
    clock = Clock()
    n, consumer, _, url = driver(slack, {"group_window": 0}, tmp_path, clock)
    consumer.add(*examples()[:3])
    step(n)
    step(n)  # a resolve waits until its firing was delivered: it goes in the next round
    n.close()
    n, consumer, _, url2 = driver(slack, {"group_window": 0}, tmp_path, clock)
    consumer.add(*examples()[:3])  # redelivered after a crash before the commit
    step(n)
    step(n)
    assert len(slack.received(url)) == 3 and slack.received(url2) == []
    assert n.stats.duplicates == 3 and consumer.commits == [{("alerts", 0): 3}]
    with pytest.raises(RuntimeError, match="in use by another notifier"):
        driver(slack, {}, tmp_path, clock)
    n.close()


def test_alerts_without_a_route_and_invalid_messages_are_dead_lettered(slack: FakeSlack, tmp_path: Path) -> None:
    from sloguard.connectors.notifier import Notifier

    clock = Clock()
    url = slack.webhook()
    settings = parse_notifier_section({"source": "alerts", "group_window": 0,
                                       "routes": {"sre-oncall": {"webhook_env": "HOOK"}}})
    senders, _ = build_senders(settings, env={"HOOK": url}, clock=clock)
    consumer, producer = FakeConsumer(), FakeProducer()
    n = Notifier(settings, senders, consumer=consumer, producer=producer, alerts_topic="alerts",
                 dead_letter_topic="dl", clock=clock)
    consumer.add(examples()[0], examples()[2], b'{"type": "alert", "id": 7}')
    step(n)
    assert len(slack.received(url)) == 1
    reasons = [d["error"] for d in producer.sent]
    assert reasons == ["notifier: no route for owner 'feature-platform' and no 'default' route: add one under "
                       "notifier.routes", "notifier: id: must be a non-empty string"]
    assert [(d["topic"], d["partition"], d["offset"]) for d in producer.sent] == [("alerts", 0, 1), ("alerts", 0, 2)]
    letters = [msgspec.convert(d, type=DeadLetter) for d in producer.sent]  # the one dead-letter format
    assert [(d.stage, d.model, d.alert_id) for d in letters] == [("notifier", "recsys", examples()[2]["id"]),
                                                                  ("notifier", None, msgspec.UNSET)]
    assert consumer.commits == [{("alerts", 0): 3}]


def test_consumption_pauses_while_too_many_alerts_wait(slack: FakeSlack, tmp_path: Path) -> None:
    clock = Clock()
    n, consumer, _, url = driver(slack, {"group_window": "30s", "max_pending": 3}, tmp_path, clock)
    consumer.add(*({**examples()[0], "id": f"{i:04x}"} for i in range(3)))
    step(n)
    step(n)
    assert consumer.paused
    clock.t += 30
    step(n)
    step(n)
    assert not consumer.paused and len(slack.received(url)) == 1
    n.close()


def test_the_state_file_journals_compacts_and_survives_torn_writes(tmp_path: Path) -> None:
    from sloguard.connectors.notifier_ledger import StateFile

    path = tmp_path / "s" / "state.json"
    state = StateFile(path)
    assert state.load() is None
    state.append([{"target": "sre", "id": "a", "started_at": "t0", "state": "firing", "at": 1.0}])
    state.append([{"target": "sre", "id": "a", "started_at": "t0", "state": "resolved", "at": 2.0}])
    state.sync()
    state.close()
    with open(path.with_name("state.json.journal"), "ab") as fh:
        fh.write(b'{"target": "sre", "id": "b", "sta')  # the process died mid-write
    state = StateFile(path)
    loaded = state.load()
    assert [(e["id"], e["state"]) for e in loaded["episodes"]] == [("a", "firing"), ("a", "resolved")]
    state.compact({"version": 1, "episodes": [loaded["episodes"][-1]]})
    assert path.with_name("state.json.journal").read_bytes() == b""
    state.append([{"target": "sre", "id": "c", "started_at": "t1", "state": "firing", "at": 3.0}])
    state.close()
    state = StateFile(path)
    assert [(e["id"], e["state"]) for e in state.load()["episodes"]] == [("a", "resolved"), ("c", "firing")]
    state.close()
    path.write_text("{garbage")
    state = StateFile(path)
    assert [e["id"] for e in state.load()["episodes"]] == ["c"]  # snapshot moved aside, journal kept
    assert list(path.parent.glob("state.json.corrupt-*"))
    state.close()


def test_the_example_notifier_config_loads() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    cfg = load_notifier_config(root / "fraud.yaml", notifier_path=root / "notifier" / "notifier.yaml")
    assert {"sre-oncall", "data-eng", "default"} <= set(cfg.settings.routes)
    assert [t.kind for t in cfg.settings.routes["recsys-oncall"]] == ["slack", "webhook"]
    assert cfg.settings.policy.group_window_s == 30.0
