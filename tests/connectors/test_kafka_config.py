"""KafkaSettings: file + environment loading, client configs, redaction, embedded detection."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sloguard.connectors.kafka_config import (
    CLIENT_LOG,
    DEFAULT_TOPICS,
    KafkaConfigError,
    KafkaSettings,
    OncePerMinute,
    is_secret_key,
    redact_config,
)

SECRETS = {
    "sasl.password": "pw-sasl-0001",
    "ssl.key.password": "pw-sslkey-0002",
    "ssl.keystore.password": "pw-keystore-0003",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----secretpem0004",
    "sasl.oauthbearer.client.secret": "oauth-secret-0005",
    "sasl.oauthbearer.config": "principal=me clientSecret=cfg-0006",
    "sasl.jaas.config": "org.apache.kafka...password=jaas-0007",
    "sasl.oauthbearer.token.endpoint.url": "https://idp.example.com/token?x=0008",
    "sasl.kerberos.keytab": "/etc/keytab-0009",
}


def test_defaults_and_embedded() -> None:
    s = KafkaSettings.from_mapping(None, env={})
    assert s.is_embedded and s.bootstrap_servers is None
    assert dict(s.topics) == DEFAULT_TOPICS
    assert s.topic("dead_letter") == "slo.dead-letter"
    assert s.topic("decisions") == "rollout.decisions"
    with pytest.raises(KeyError, match="unknown topic role"):
        s.topic("nope")
    with pytest.raises(KafkaConfigError, match="no Kafka bootstrap servers"):
        s.producer_config()
    started = s.with_bootstrap("127.0.0.1:1234")
    assert not started.is_embedded and s.is_embedded
    assert started.producer_config()["bootstrap.servers"] == "127.0.0.1:1234"


def test_is_embedded_logic() -> None:
    assert KafkaSettings.from_mapping({"bootstrap_servers": ""}, env={}).is_embedded
    assert KafkaSettings.from_mapping({"bootstrap_servers": []}, env={}).is_embedded
    assert KafkaSettings.from_mapping({}, env={"KAFKA_BOOTSTRAP_SERVERS": "  "}).is_embedded
    assert not KafkaSettings.from_mapping({"bootstrap_servers": "b:9092"}, env={}).is_embedded
    assert not KafkaSettings.from_mapping({}, env={"KAFKA_BOOTSTRAP_SERVERS": "e:1"}).is_embedded
    from_client = KafkaSettings.from_mapping({"client": {"bootstrap.servers": "c:9"}}, env={})
    assert from_client.bootstrap_servers == "c:9" and "bootstrap.servers" not in from_client.client


def test_env_overrides_file() -> None:
    kafka = {
        "bootstrap_servers": ["file-a:9092", "file-b:9092"],
        "topics": {"alerts": "team.alerts"},
        "client": {"security.protocol": "SSL", "sasl.username": "file-user"},
    }
    assert KafkaSettings.from_mapping(kafka, env={}).bootstrap_servers == (
        "file-a:9092,file-b:9092")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "env:9092",
        "SLOGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SLOGUARD_KAFKA_SASL_PASSWORD": "from-env",
        "UNRELATED": "x",
    }
    s = KafkaSettings.from_mapping(kafka, env=env)
    assert s.bootstrap_servers == "env:9092"
    assert s.client == {"security.protocol": "SASL_SSL", "sasl.username": "file-user",
                        "sasl.password": "from-env"}
    assert s.topic("alerts") == "team.alerts" and s.topic("budget") == "slo.budget"
    # the sloguard-specific variable wins over the generic one
    env["SLOGUARD_KAFKA_BOOTSTRAP_SERVERS"] = "mine:9092"
    assert KafkaSettings.from_mapping(kafka, env=env).bootstrap_servers == "mine:9092"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "osenv:9092")
    monkeypatch.setenv("SLOGUARD_KAFKA_CLIENT_ID", "sloguard-test")
    s = KafkaSettings.from_config({"kafka": {"bootstrap_servers": "file:1"}})
    assert s.bootstrap_servers == "osenv:9092"
    assert s.producer_config()["client.id"] == "sloguard-test"


def test_sasl_ssl_keys_pass_through() -> None:
    kafka = {
        "bootstrap_servers": "broker:9093",
        "client": {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "svc",
            "sasl.password": "s3cret",
            "ssl": {"ca": {"location": "/etc/ca.pem"}},  # nested YAML flattens to dotted keys
            "enable.ssl.certificate.verification": True,
        },
    }
    s = KafkaSettings.from_mapping(kafka, env={})
    expected = {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "enable.ssl.certificate.verification": True,
        "logger": CLIENT_LOG,  # librdkafka logs through Python logging, one line a minute per message
    }
    assert s.producer_config() == expected
    assert s.admin_config() == expected
    consumer = s.consumer_config("grp")
    assert consumer.items() >= expected.items()


def test_consumer_config_defaults_and_precedence() -> None:
    s = KafkaSettings.from_mapping(
        {"bootstrap_servers": "b:1", "client": {"enable.auto.commit": True,
                                                "session.timeout.ms": 45000}}, env={})
    c = s.consumer_config("g1")
    assert c["group.id"] == "g1"
    assert c["enable.auto.commit"] is False  # the argument wins over kafka.client
    assert c["auto.offset.reset"] == "earliest"
    assert c["session.timeout.ms"] == 45000  # None keeps the client's value
    c = s.consumer_config("g2", session_timeout_ms=6000, auto_offset_reset="latest",
                          extra={"max.poll.interval.ms": 60000})
    assert c["session.timeout.ms"] == 6000 and c["auto.offset.reset"] == "latest"
    assert c["max.poll.interval.ms"] == 60000
    assert s.producer_config({"linger.ms": 5})["linger.ms"] == 5


def test_redaction_hides_every_secret() -> None:
    env = {"SLOGUARD_KAFKA_SASL_PASSWORD": "pw-env-0010", "SLOGUARD_KAFKA_SASL_USERNAME": "svc"}
    s = KafkaSettings.from_mapping({"bootstrap_servers": "b:9093", "client": dict(SECRETS)},
                                   env=env)
    secret_values = [*SECRETS.values(), "pw-env-0010"]
    red = s.redacted()
    for text in (repr(s), str(s), f"{s}", repr(red), repr([s])):
        for value in secret_values:
            assert value not in text, f"{value!r} leaked in {text}"
    for key in SECRETS:
        assert red["client"][key] == "***"
    assert red["client"]["sasl.username"] == "svc"
    assert red["bootstrap_servers"] == "b:9093"
    assert "b:9093" in repr(s) and "svc" in repr(s)
    # redacted() is a copy: the real config still carries the secrets
    assert s.producer_config()["sasl.password"] == "pw-env-0010"
    assert redact_config(s.producer_config())["sasl.password"] == "***"


@pytest.mark.parametrize("key", ["sasl.password", "SSL.KEY.PASSWORD", "ssl.key.location",
                                 "sasl.oauthbearer.client.secret", "sasl.jaas.config",
                                 "sasl.oauthbearer.config", "api.token", "ssl.keystore.password"])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["bootstrap.servers", "sasl.username", "sasl.mechanisms",
                                 "security.protocol", "ssl.ca.location", "client.id"])
def test_non_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("kafka", "match"),
    [
        ({"bootstrap": "x"}, "unknown key"),
        ({"topics": {"alert": "x"}}, "kafka.topics.alert: unknown topic role"),
        ({"topics": {"alerts": "has space"}}, "not a valid Kafka topic name"),
        ({"topics": ["x"]}, "kafka.topics: must be a mapping"),
        ({"client": {"sasl.password": None}}, "kafka.client.sasl.password"),
        ({"client": "security.protocol=SSL"}, "kafka.client: must be a mapping"),
        ({"bootstrap_servers": 9092}, "kafka.bootstrap_servers"),
    ],
)
def test_bad_config_names_the_field(kafka: dict[str, object], match: str) -> None:
    with pytest.raises(KafkaConfigError, match=match):
        KafkaSettings.from_mapping(kafka, env={})


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "kafka:\n"
        "  bootstrap_servers: broker:9092\n"
        "  topics: {inference: prod.inference}\n"
        "  client:\n"
        "    security.protocol: SASL_SSL\n"
        "    sasl.password: file-secret\n"
        "models: {}\n")
    s = KafkaSettings.from_file(path, env={})
    assert s.bootstrap_servers == "broker:9092"
    assert s.topic("inference") == "prod.inference"
    assert s.client["security.protocol"] == "SASL_SSL"
    assert "file-secret" not in repr(s)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert KafkaSettings.from_file(empty, env={}).is_embedded


def test_example_configs_load() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for path in sorted(examples.glob("*.yaml")):
        assert KafkaSettings.from_file(path, env={}).topic("alerts")


def test_a_client_message_repeated_every_50_ms_passes_once_a_minute():
    now = [0.0]
    once = OncePerMinute(60.0, clock=lambda: now[0])

    def passes(text: str) -> bool:
        return once.filter(logging.LogRecord("sloguard.kafka.client", logging.ERROR, "", 0, text, None, None))

    refused = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {}ms)"
    seen = []
    for step in range(2400):  # two minutes of retries
        now[0] = step * 0.05
        seen.append(passes(refused.format(step % 7)))
    assert sum(seen) == 2 and seen[0] and seen[1200]
    assert passes("1/1 brokers are down")  # another message is not held back by the first


def test_an_unreachable_broker_does_not_flood_stderr():
    """`sloguard notifier` against a port nothing listens on, for 3 s: librdkafka retries every
    ~50 ms; stderr says what is wrong in a line or two (the wait for Kafka, and the client's own
    complaint at most once a minute), not one line per retry, and ends without a traceback."""
    config = Path(__file__).resolve().parents[2] / "examples" / "fraud.yaml"
    done = subprocess.run([sys.executable, "-m", "sloguard.apps.cli", "notifier", "--config", str(config),
                           "--bootstrap", "127.0.0.1:1", "--dry-run", "--stop-after", "3"],
                          capture_output=True, text=True, timeout=60, check=False)
    down = [line for line in done.stderr.splitlines()
            if "Connection refused" in line or "Kafka at 127.0.0.1:1 does not answer" in line]
    assert 1 <= len(down) <= 4 and done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not any(line.startswith("%3|") for line in done.stderr.splitlines())


def test_waiting_for_an_unreachable_kafka_says_so_and_backs_off():
    """Commands that need Kafka wait for it with a clear line and a growing delay (no traceback)."""
    import io

    from sloguard.connectors.admin import wait_for_kafka

    settings = KafkaSettings.from_mapping({"bootstrap_servers": "127.0.0.1:1"}, env={})
    out, slept = io.StringIO(), []
    meta = wait_for_kafka(settings, ["ml.inference"], out, max_delay_s=4.0, sleep=slept.append,
                          who="sloguard notifier", stop=lambda: len(slept) >= 4, answer_timeout_s=0.2)
    assert meta is None and slept == [1.0, 2.0, 4.0, 4.0]
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(line.startswith("sloguard notifier: Kafka at 127.0.0.1:1 does not answer")
                                   for line in lines)
