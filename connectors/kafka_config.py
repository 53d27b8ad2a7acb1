"""Kafka settings: bootstrap servers, topic names and librdkafka pass-through options.

Read from the config file's ``kafka:`` mapping and from the environment (environment wins):

- ``KAFKA_BOOTSTRAP_SERVERS`` or ``SLOGUARD_KAFKA_BOOTSTRAP_SERVERS`` (the latter wins);
- ``SLOGUARD_KAFKA_<KEY>`` for any librdkafka key, upper-snake: ``SLOGUARD_KAFKA_SASL_PASSWORD``
  sets ``sasl.password``, ``SLOGUARD_KAFKA_SECURITY_PROTOCOL`` sets ``security.protocol``.

```yaml
kafka:
  bootstrap_servers: "broker:9092"          # or a list; absent -> embedded broker
  topics: {inference: ml.inference, alerts: slo.alerts}   # any subset; the rest keep defaults
  client:                                   # librdkafka keys, passed through verbatim
    security.protocol: SASL_SSL
    sasl.mechanisms: PLAIN
    sasl.username: sloguard
    ssl.ca.location: /etc/ssl/certs/ca.pem
```

Secrets never reach logs through this module: ``repr()``/``str()`` and :meth:`redacted` mask
every secret-like key.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sloguard.core.spec.model import DEFAULT_TOPICS as _CONFIG_TOPICS

__all__ = [
    "CLIENT_LOG",
    "DEFAULT_TOPICS",
    "ENV_BOOTSTRAP",
    "ENV_PREFIX",
    "KafkaConfigError",
    "KafkaSettings",
    "is_secret_key",
    "is_valid_topic_name",
    "redact_config",
]

#: Topic role -> default topic name (one table, kept with the config's contract).
DEFAULT_TOPICS: dict[str, str] = dict(_CONFIG_TOPICS)

ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
ENV_PREFIX = "SLOGUARD_KAFKA_"
REDACTED = "***"

_SECRET_MARKERS = ("password", "secret", "token", "key", "jaas", "credential",
                   "sasl.oauthbearer.config")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SECTION_KEYS = ("bootstrap_servers", "topics", "client")


class KafkaConfigError(ValueError):
    """The ``kafka:`` config section or a ``SLOGUARD_KAFKA_*`` variable is invalid."""


def is_valid_topic_name(name: object) -> bool:
    """True if *name* is a legal Kafka topic name (1-249 of ``[A-Za-z0-9._-]``, not . or ..)."""
    return isinstance(name, str) and bool(_TOPIC_RE.match(name)) and name not in {".", ".."}


def is_secret_key(key: str) -> bool:
    """True if a librdkafka key may hold a secret (password, secret, token, key, jaas...)."""
    k = key.lower()
    return any(marker in k for marker in _SECRET_MARKERS)


def redact_config(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of a librdkafka/confluent-kafka config dict with secret-like values masked."""
    return {k: (REDACTED if is_secret_key(str(k)) else v) for k, v in conf.items()}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Flatten nested mappings into dotted librdkafka keys (``{sasl: {mechanisms: X}}``)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str) or not k:
                raise KafkaConfigError(f"kafka.client: key {k!r} must be a non-empty string")
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
        return
    if value is None or isinstance(value, (list, tuple, set, dict)):
        raise KafkaConfigError(
            f"kafka.client.{prefix}: value must be a string, number or boolean, "
            f"got {type(value).__name__}")
    out[prefix] = value


def _servers(value: Any, where: str) -> str | None:
    """Normalise bootstrap servers given as a string or a list to ``"h1:p1,h2:p2"``."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value):
        parts = [p.strip() for p in value]
    else:
        raise KafkaConfigError(f"{where}: must be a string or a list of 'host:port' strings")
    parts = [p for p in parts if p]
    return ",".join(parts) or None


def _env_key(var: str) -> str:
    """``SLOGUARD_KAFKA_SASL_PASSWORD`` -> ``sasl.password``."""
    return var[len(ENV_PREFIX):].lower().replace("_", ".")


class OncePerMinute(logging.Filter):
    """Pass each distinct message (numbers ignored) at most once per `interval_s`.

    librdkafka retries a refused connection every ~50 ms and logs every attempt, so a broker that is
    down floods stderr with ``%3|...|FAIL|`` lines; the commands say what is wrong themselves ("Kafka
    at ... does not answer; retrying in 4 s"), and one line a minute of the client's own view stays.
    """

    def __init__(self, interval_s: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())
        now = self.clock()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            return False
        if len(self._last) > 1000:  # a bound: distinct messages are few in practice
            self._last.clear()
        self._last[key] = now
        return True


# Every client built from KafkaSettings logs through here (librdkafka's `logger` option) instead of
# writing raw lines to stderr itself.
CLIENT_LOG = logging.getLogger("sloguard.kafka.client")
CLIENT_LOG.addFilter(OncePerMinute())


@dataclass(frozen=True, repr=False)
class KafkaSettings:
    """Where sloguard's Kafka is and how to talk to it; builds confluent-kafka configs.

    ``bootstrap_servers`` None means "no cluster configured": use the embedded broker
    (:attr:`is_embedded`), then :meth:`with_bootstrap` its address.
    """

    bootstrap_servers: str | None = None
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    client: Mapping[str, Any] = field(default_factory=dict)

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls, kafka: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        """Build from the ``kafka:`` mapping (may be None) and *env* (default ``os.environ``)."""
        env = os.environ if env is None else env
        kafka = {} if kafka is None else kafka
        if not isinstance(kafka, Mapping):
            raise KafkaConfigError("kafka: must be a mapping")
        unknown = sorted(set(kafka) - set(_SECTION_KEYS))
        if unknown:
            raise KafkaConfigError(
                f"kafka: unknown key(s) {', '.join(map(str, unknown))}; allowed: "
                f"{', '.join(_SECTION_KEYS)} (librdkafka options go under kafka.client)")

        client: dict[str, Any] = {}
        raw_client = kafka.get("client")
        if raw_client is not None:
            if not isinstance(raw_client, Mapping):
                raise KafkaConfigError("kafka.client: must be a mapping of librdkafka keys")
            _flatten("", raw_client, client)

        servers = _servers(kafka.get("bootstrap_servers"), "kafka.bootstrap_servers")
        client_servers = client.pop("bootstrap.servers", None)
        if servers is None and client_servers is not None:
            servers = _servers(str(client_servers), "kafka.client.bootstrap.servers")

        for var in sorted(env):
            if var.startswith(ENV_PREFIX) and len(var) > len(ENV_PREFIX):
                key = _env_key(var)
                if key != "bootstrap.servers":
                    client[key] = env[var]
        env_servers = _servers(env.get(f"{ENV_PREFIX}BOOTSTRAP_SERVERS"), "env") or _servers(
            env.get(ENV_BOOTSTRAP), "env")
        if env_servers:
            servers = env_servers

        topics = dict(DEFAULT_TOPICS)
        raw_topics = kafka.get("topics")
        if raw_topics is not None:
            if not isinstance(raw_topics, Mapping):
                raise KafkaConfigError("kafka.topics: must be a mapping of role -> topic name")
            for role, name in raw_topics.items():
                if role not in DEFAULT_TOPICS:
                    raise KafkaConfigError(
                        f"kafka.topics.{role}: unknown topic role; known roles: "
                        f"{', '.join(DEFAULT_TOPICS)}")
                if not is_valid_topic_name(name):
                    raise KafkaConfigError(
                        f"kafka.topics.{role}: {name!r} is not a valid Kafka topic name "
                        "(1-249 characters of letters, digits, '.', '_', '-')")
                topics[role] = name
        return cls(bootstrap_servers=servers, topics=topics, client=client)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        """Build from a whole parsed config file (its ``kafka:`` key is optional)."""
        return cls.from_mapping((config or {}).get("kafka"), env)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        """Build from a YAML config file path."""
        from sloguard.core.spec.yamlfile import load_yaml

        with Path(path).open(encoding="utf-8") as fh:
            data = load_yaml(fh)
        if data is not None and not isinstance(data, Mapping):
            raise KafkaConfigError(f"{path}: top level must be a mapping")
        return cls.from_config(data, env)

    # -- queries ----------------------------------------------------------------------------

    @property
    def is_embedded(self) -> bool:
        """True when no bootstrap servers are configured anywhere (use the embedded broker)."""
        return not self.bootstrap_servers

    def with_bootstrap(self, bootstrap_servers: str) -> KafkaSettings:
        """Copy pointing at *bootstrap_servers* (e.g. a just-started embedded broker)."""
        return KafkaSettings(bootstrap_servers=bootstrap_servers, topics=dict(self.topics),
                             client=dict(self.client))

    def topic(self, role: str) -> str:
        """Topic name for a role (``inference``, ``alerts``, ``dead_letter``...)."""
        try:
            return self.topics[role]
        except KeyError:
            known = ", ".join(self.topics)
            raise KeyError(f"unknown topic role {role!r}; known: {known}") from None

    # -- client configs ---------------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        if not self.bootstrap_servers:
            raise KafkaConfigError(
                "no Kafka bootstrap servers configured (set kafka.bootstrap_servers or "
                "KAFKA_BOOTSTRAP_SERVERS, or start the embedded broker and use with_bootstrap())")
        conf: dict[str, Any] = dict(self.client)
        conf["bootstrap.servers"] = self.bootstrap_servers
        conf.setdefault("logger", CLIENT_LOG)
        return conf

    def producer_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """confluent-kafka ``Producer`` config; *extra* keys win over everything."""
        conf = self._base()
        conf.update(extra or {})
        return conf

    def consumer_config(
        self,
        group_id: str,
        *,
        enable_auto_commit: bool = False,
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """confluent-kafka ``Consumer`` config.

        Precedence: ``kafka.client`` < these arguments < *extra*. ``session_timeout_ms`` None
        keeps the client's (or librdkafka's) value; on the embedded broker a group join takes
        about half of it, so tests use 6000.
        """
        conf = self._base()
        conf["group.id"] = group_id
        conf["enable.auto.commit"] = enable_auto_commit
        conf["auto.offset.reset"] = auto_offset_reset
        if session_timeout_ms is not None:
            conf["session.timeout.ms"] = int(session_timeout_ms)
        conf.update(extra or {})
        return conf

    def admin_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """confluent-kafka ``AdminClient`` config; *extra* keys win over everything."""
        conf = self._base()
        conf.update(extra or {})
        return conf

    # -- logging-safe views -----------------------------------------------------------------

    def redacted(self) -> dict[str, Any]:
        """Plain-dict copy safe to log: every secret-like client value is ``"***"``."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "topics": dict(self.topics),
            "client": redact_config(self.client),
        }

    def __repr__(self) -> str:
        r = self.redacted()
        return (f"KafkaSettings(bootstrap_servers={r['bootstrap_servers']!r}, "
                f"topics={r['topics']!r}, client={r['client']!r})")

    __str__ = __repr__
