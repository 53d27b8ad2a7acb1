"""Issue 15 item 5, end to end: `sloguard notifier` as a real process on the embedded broker, posting
incidents to a local server that plays Slack (incoming webhooks and the Web API's chat.postMessage
and chat.update) through a storm of 429s with Retry-After, killed with SIGKILL four times and
restarted. Nothing may be lost, a resolve never precedes its open, at most one duplicate per kill,
one message per second per receiver (here `min_interval`) and no request inside a Retry-After."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer
from slack_server import PASS, FakeSlack, rate_limited

from sloguard.connectors.slack_incident import INCIDENT_REF

KILLS = 4
INCIDENTS = 24
MIN_INTERVAL = 0.2
OWNERS = ("sre", "data", "ml")  # two incoming webhooks and a Web API channel
SLACK_BIN = Path(sys.executable).with_name("sloguard")


def incident_messages(n: int) -> list[dict[str, Any]]:
    """n incidents, each opened, joined by a second key, then resolved (seq 1, 2, 3): whole incident
    messages, as the flow writes them (the notifier reads them as its Incident type)."""
    out = []
    for i in range(n):
        owner = OWNERS[i % len(OWNERS)]
        opened = f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00.000Z"
        member = {"alert_id": f"{i:016x}", "slo": "fraud-availability", "dimension": "infrastructure",
                  "rule": "fast-burn", "severity": "page", "segment": {"region": "eu"}, "started_at": opened,
                  "state": "firing", "resolved_at": None, "burn_rates": {"1h": 20.0, "5m": 50.0},
                  "budget_remaining": 0.4, "inhibited_by": None}
        base = {"type": "incident", "id": f"{i:016x}", "severity": "page", "model": "fraud", "owner": owner,
                "group": {"model": "fraud", "slo": "fraud-availability", "severity": "page"},
                "slo": "fraud-availability", "dimension": "infrastructure", "opened_at": opened, "ts": opened,
                "resolved_at": None, "keys": 1, "inhibited": [], "explained_by": None, "cause": None,
                "summary": f"fraud-availability: fast-burn on region=eu (incident {i})", "actions": ["look"],
                "runbook": None}
        out.append({**base, "seq": 1, "state": "firing", "change": "opened", "members": [member]})
        out.append({**base, "seq": 2, "state": "firing", "change": "joined", "keys": 2,
                    "members": [member, {**member, "segment": {}}]})
        out.append({**base, "seq": 3, "state": "resolved", "change": "resolved", "resolved_at": opened,
                    "members": [{**member, "state": "resolved", "resolved_at": opened}]})
    # the stream interleaves incidents; each incident's own messages stay in order (keyed by id)
    return sorted(out, key=lambda m: (m["seq"] + int(m["id"], 16) % 3, m["id"]))


def storm(n: int) -> list:
    """A 429 storm: of every three answers, two are 429 with Retry-After 1 s or 0.5 s."""
    return [rate_limited(1) if i % 3 == 0 else rate_limited(0.5) if i % 3 == 1 else PASS for i in range(n)]


@pytest.mark.kafka
@pytest.mark.slow
def test_a_429_storm_and_four_kills_lose_nothing_and_duplicate_at_most_once_per_kill(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path,
) -> None:
    topic = topic_factory("kills-incidents", partitions=2)
    dead = topic_factory("kills-dead-letter")
    with FakeSlack() as slack:
        hooks = {"sre": slack.webhook(), "data": slack.webhook()}
        token = slack.bot_token()
        for url in hooks.values():
            slack.script(url, *storm(30))
        slack.script(slack.api("chat.postMessage"), *storm(12))
        slack.script(slack.api("chat.update"), *storm(12))
        config = tmp_path / "notifier.yaml"
        config.write_text(yaml.safe_dump({
            "kafka": {"topics": {"incidents": topic, "dead_letter": dead}},
            "notifier": {
                "min_interval": MIN_INTERVAL, "max_retries": 0, "retry_initial": 0.2, "retry_max": 1,
                "timeout": 2, "session_timeout": "6s", "state_file": str(tmp_path / "state" / "notifier.json"),
                "routes": {"sre": {"webhook_env": "HOOK_SRE"}, "data": {"webhook_env": "HOOK_DATA"},
                           "ml": {"type": "slack_api", "token_env": "BOT_TOKEN", "channel": "C0ML",
                                  "api_url": f"{slack.base}/api/"}},
            },
        }))
        env = {**os.environ, "HOOK_SRE": hooks["sre"], "HOOK_DATA": hooks["data"], "BOT_TOKEN": token}
        messages = incident_messages(INCIDENTS)
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 2})
        for m in messages:
            producer.produce(topic, key=m["id"].encode(), value=orjson.dumps(m))
        assert producer.flush(30) == 0

        def start() -> subprocess.Popen:
            return subprocess.Popen([str(SLACK_BIN), "notifier", "--config", str(config), "--bootstrap",
                                     kafka_bootstrap], env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(tmp_path / "notifier.log", "ab"))

        def answered() -> int:
            return len(slack.requests)

        proc = start()
        kills = 0
        try:
            for threshold in (6, 18, 30, 42)[:KILLS]:  # kill -9 in the middle of the storm
                deadline = time.monotonic() + 60
                while answered() < threshold and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert answered() >= threshold, "the notifier stopped posting"
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills += 1
                proc = start()

            def done() -> bool:
                notices = webhook_notices(slack, hooks)
                want = sum(2 for m in messages if m["seq"] == 1 and m["owner"] != "ml")
                resolved = final_api_states(slack)
                return (len({k for k in notices if k[0] in ("sre", "data")}) >= want
                        and sum(1 for s in resolved.values() if s == "resolved") == INCIDENTS // 3)

            deadline = time.monotonic() + 90
            while not done() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)  # anything extra (a duplicate) would arrive now
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log = (tmp_path / "notifier.log").read_text(errors="replace")

        notices = webhook_notices(slack, hooks)
        expected = {(m["owner"], m["id"], state) for m in messages if m["owner"] != "ml"
                    for state in ("firing", "resolved") if m["seq"] == 1}
        lost = expected - set(notices)
        duplicates = sum(len(times) - 1 for times in notices.values())
        for (owner, inc, state), times in notices.items():
            if state == "resolved":
                assert min(times) > min(notices[(owner, inc, "firing")]), f"{inc}: resolve before its open"
        posts = Counter(inc for inc in api_posts(slack))
        api_duplicates = sum(c - 1 for c in posts.values())
        states = final_api_states(slack)
        api_lost = [m["id"] for m in messages
                    if m["owner"] == "ml" and m["seq"] == 1 and states.get(m["id"]) != "resolved"]
        print(f"\nnotifier under a 429 storm and {kills} kills: {len(expected)} webhook notices, lost {len(lost)}, "
              f"duplicates {duplicates}; Web API: {len(posts)} incidents, lost {len(api_lost)}, "
              f"duplicate posts {api_duplicates}; requests {len(slack.requests)}, "
              f"429s {sum(r.status == 429 for r in slack.requests)}")
        assert not lost and not api_lost, log[-3000:]
        assert duplicates + api_duplicates <= kills
        assert kills == KILLS
        check_pacing(slack, [*hooks.values(), slack.api("chat.postMessage")])


def webhook_notices(slack: FakeSlack, hooks: dict[str, str]) -> dict[tuple[str, str, str], list[float]]:
    """(route, incident id, firing|resolved) -> arrival times of the posts Slack accepted."""
    out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for route, url in hooks.items():
        for r in slack.received(url):
            for b in r.json.get("blocks", []):
                if b["type"] == "context":
                    for e in b["elements"]:
                        found = INCIDENT_REF.match(e["text"])
                        if found:
                            out[(route, found.group(2), found.group(1))].append(r.at)
    return out


def _incident_of(payload: dict[str, Any]) -> tuple[str, str] | None:
    for b in payload.get("blocks", []):
        if b["type"] == "context":
            for e in b["elements"]:
                found = INCIDENT_REF.match(e["text"])
                if found:
                    return found.group(2), found.group(1)
    return None


def api_posts(slack: FakeSlack) -> list[str]:
    """The incident of every message chat.postMessage created."""
    return [ref[0] for key in list(slack.posts) if (ref := _incident_of(slack.messages[key])) is not None]


def final_api_states(slack: FakeSlack) -> dict[str, str]:
    """Incident id -> what its newest Slack message (the last posted for it) now says."""
    out = {}
    for key in list(slack.posts):
        ref = _incident_of(slack.messages[key])
        if ref is not None:
            out[ref[0]] = ref[1]
    return out


def check_pacing(slack: FakeSlack, urls: list[str]) -> None:
    """Per receiver: requests at least MIN_INTERVAL apart, and none inside a Retry-After."""
    for url in urls:
        got = slack.received(url, None)
        for prev, nxt in itertools.pairwise(got):
            gap = nxt.at - prev.at
            if prev.status == 429:
                wait = float(prev.answer_headers.get("Retry-After", 0))
                assert gap >= wait - 0.05, f"{url[-12:]}: a post {gap:.3f} s after a 429 with Retry-After {wait:g}"
            assert gap >= MIN_INTERVAL - 0.05, f"{url[-12:]}: two posts {gap:.3f} s apart"
