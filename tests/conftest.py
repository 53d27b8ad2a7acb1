"""Shared pytest fixtures: a Kafka-protocol broker for the session and per-test topics.

``kafka_bootstrap`` picks, in order: ``KAFKA_BOOTSTRAP_SERVERS`` from the environment; a
testcontainers Kafka when a Docker engine answers (falling back, with a warning, if the container
cannot start); the embedded Tansu broker. Tests that use it
must be marked ``@pytest.mark.kafka``.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator

import pytest

from sloguard.connectors.admin import create_topics, delete_topics
from sloguard.connectors.kafka_config import ENV_BOOTSTRAP


def _docker_engine_answers() -> bool:
    """True if a Docker engine responds to a ping within ~2 s (never raises)."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a Kafka-protocol broker that lives for the whole test session."""
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        yield external
        return
    if _docker_engine_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # older testcontainers layout
            from testcontainers.kafka import KafkaContainer

        container = KafkaContainer()
        try:
            container.start()
        except Exception as exc:  # e.g. the image cannot be pulled: fall back, loudly
            warnings.warn(f"Docker answers but Kafka container failed ({exc}); "
                          "using the embedded broker", stacklevel=1)
        else:
            try:
                yield container.get_bootstrap_server()
            finally:
                container.stop()
            return
    from sloguard.connectors.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def topic_factory(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Callable ``make(prefix=<test name>, partitions=1) -> str`` creating a unique topic.

    Topics are created through :func:`sloguard.connectors.admin.create_topics` and deleted after the
    test (best effort).
    """
    conf = {"bootstrap.servers": kafka_bootstrap}
    made: list[str] = []
    default_prefix = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:120]

    def make(prefix: str | None = None, partitions: int = 1) -> str:
        name = f"{prefix or default_prefix}.{uuid.uuid4().hex[:12]}"
        create_topics(conf, [name], partitions=partitions)
        made.append(name)
        return name

    yield make
    if made:
        try:
            delete_topics(conf, made, timeout=10)
        except Exception as exc:  # cleanup must not turn a passing test into an error
            print(f"topic_factory: could not delete {made}: {exc}")
