"""Notifier throughput: Block Kit rendering, posts to a local Slack-like server, and the whole
notifier (Kafka consumer group -> Slack) on the embedded broker.

    .venv/bin/python benchmarks/notifier_throughput.py [--alerts 4000]

Real Slack allows about one message per second per incoming webhook, so these numbers say how
much headroom the notifier itself has, not how fast a channel can be filled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from confluent_kafka import Producer  # noqa: E402
from slack_server import FakeSlack, example_alerts  # noqa: E402

from sloguard.connectors.admin import create_topics  # noqa: E402
from sloguard.connectors.broker import EmbeddedBroker  # noqa: E402
from sloguard.connectors.notifier import run_notifier  # noqa: E402
from sloguard.connectors.slack import SlackWebhookSender, render_message  # noqa: E402
from sloguard.connectors.webhooks import Secret  # noqa: E402
from sloguard.core.notify.notify_policy import Batch, Pending  # noqa: E402


def alerts(n: int) -> list[dict]:
    base = example_alerts()[0]
    out = []
    for i in range(n // 2):
        common = {**base, "id": f"{i:016x}", "model": f"model-{i % 20}", "segment": {"region": f"r{i % 7}"}}
        out += [{**common, "state": "firing"}, {**common, "state": "resolved", "ts": "2024-06-03T15:00:00Z"}]
    return out


def bench_render(n: int = 2000) -> None:
    group = [Pending("sre", a, None) for a in alerts(20)[::2][:10]]
    batch = Batch("sre", "firing", "model-0", group, 0.0, 0.0)
    t0 = time.perf_counter()
    for _ in range(n):
        render_message(batch)
    dt = (time.perf_counter() - t0) / n
    print(f"render a 10-alert message:            {dt * 1e6:8.0f} µs")


def bench_sender(slack: FakeSlack, n: int = 1000) -> None:
    sender = SlackWebhookSender("sre", Secret(slack.webhook(), "bench"))
    batch = Batch("sre", "firing", "m", [Pending("sre", example_alerts()[0], None)], 0.0, 0.0)
    t0 = time.perf_counter()
    for _ in range(n):
        assert sender.send(batch).ok
    dt = time.perf_counter() - t0
    print(f"Slack posts, one at a time:           {n / dt:8.0f} messages/s")


def bench_notifier(slack: FakeSlack, bootstrap: str, n: int, window: float) -> None:
    topic = f"bench.alerts.{time.time_ns()}"
    create_topics({"bootstrap.servers": bootstrap}, [topic, topic + ".dl"], partitions=2)
    url = slack.webhook()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for a in alerts(n):
        producer.produce(topic, key=a["id"].encode(), value=orjson.dumps(a))
    producer.flush(30)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "n.yaml"
        cfg.write_text(yaml.safe_dump({"kafka": {"topics": {"alerts": topic, "dead_letter": topic + ".dl"}},
                                       # per-alert mode, unpaced: the notifier's own cost, not Slack's 1/s
                                       "notifier": {"source": "alerts", "min_interval": 0,
                                                    "group_window": window or 0, "reminder_interval": 0,
                                                    "state_file": f"{tmp}/state.json",
                                                    "routes": {"default": {"webhook_env": "HOOK"}}}}))
        stop = threading.Event()
        stats = {}
        thread = threading.Thread(target=lambda: stats.update(s=run_notifier(
            cfg, bootstrap=bootstrap, env={"HOOK": url}, stop=stop, session_timeout_ms=6000,
            group_id=f"bench-{time.time_ns()}", poll_s=0.05)))
        thread.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            got = slack.received(url)
            if got and sum(len(r.json["blocks"]) for r in got) and stats_done(got, n):
                break
            time.sleep(0.05)
        stop.set()
        thread.join()
    got = slack.received(url)
    span = got[-1].at - got[0].at
    s = stats["s"]
    print(f"notifier end to end, window {window:>4}s:   {s.alerts_delivered / span:8.0f} alerts/s "
          f"({s.alerts_delivered} alerts in {s.messages_sent} messages over {span:.2f} s, "
          f"{s.send_seconds / max(1, s.messages_sent) * 1e3:.2f} ms per post)")


def stats_done(got: list, n: int) -> bool:
    from slack_server import notices_in

    return sum(len(notices_in(r.json)) for r in got) >= n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=4000)
    args = ap.parse_args()
    bench_render()
    with FakeSlack() as slack:
        bench_sender(slack)
        with EmbeddedBroker() as broker:
            bench_notifier(slack, broker.bootstrap_servers, args.alerts, 0)
            bench_notifier(slack, broker.bootstrap_servers, args.alerts, 0.2)


if __name__ == "__main__":
    main()
