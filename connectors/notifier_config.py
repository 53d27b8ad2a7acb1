"""The notifier's configuration: the ``notifier:`` section, its routes, and the senders they build.

A route maps an owner route name (``owners.<dimension>.route`` in the main config, or ``default``)
to one or more targets: a Slack incoming webhook (``type: slack``, the default) or a generic JSON
webhook (``type: webhook``). The config names where each URL lives, an environment variable
(``webhook_env``) or a file (``webhook_file``), never the URL: it is a credential. Validation
reports every problem with its path (``notifier.routes.sre.webhook_env: ...``), and reading the
secrets fails fast naming the variable or file, never the value.

See ``examples/notifier/notifier.yaml`` and ``connectors/notifier.py`` for how it runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import yaml

from sloguard.connectors.kafka_config import KafkaConfigError, KafkaSettings, is_valid_topic_name
from sloguard.connectors.slack import render_batch_preview
from sloguard.connectors.slack_api import SlackApiSender
from sloguard.connectors.slack_incident import SlackIncidentWebhookSender, render_incident_preview
from sloguard.connectors.webhooks import GenericWebhookSender, Redactor, Secret, SendResult
from sloguard.core.notify.notify_policy import DEFAULT_GROUP_ID, NotifyPolicy
from sloguard.core.spec.timeutil import parse_duration

__all__ = [
    "DEFAULT_GROUP_ID",
    "NotifierConfig",
    "NotifierConfigError",
    "NotifierSettings",
    "PreviewSender",
    "Sender",
    "TargetSpec",
    "build_senders",
    "load_notifier_config",
    "parse_notifier_section",
]

_SECTION_KEYS = {
    "group_id", "state_file", "dead_letter_topic", "group_window", "max_group_size",
    "reminder_interval", "reminder_severities", "max_reminders", "retry_initial", "retry_max",
    "forget_after", "timeout", "max_retries", "backoff_factor", "max_retry_after", "max_pending",
    "session_timeout", "routes", "source", "min_interval",
}
_TARGET_KEYS = {"type", "webhook_env", "webhook_file", "headers_env", "group", "remind", "token_env", "token_file",
                "channel", "api_url"}
SOURCES = ("incidents", "alerts")


class NotifierConfigError(ValueError):
    """The notifier's config cannot work; `problems` holds one `path: message` line each."""

    def __init__(self, problems: list[str], source: str = "notifier config") -> None:
        self.problems = problems
        if len(problems) == 1:  # one problem, one line (as the main config's ConfigError)
            super().__init__(f"{source}: {problems[0]}")
        else:
            super().__init__(f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """One receiver of a route: where its URL comes from (never the URL itself)."""

    route: str
    name: str  # the ledger's name for this target: the route, or route[i] when it has several
    kind: str  # slack | webhook | slack_api
    webhook_env: str | None = None  # for slack_api: where the bot token is
    webhook_file: str | None = None
    headers_env: Mapping[str, str] = field(default_factory=dict)
    group: bool = True
    remind: bool = True
    channel: str | None = None  # slack_api: the channel id (or name) to post in
    api_url: str = "https://slack.com/api/"

    @property
    def source(self) -> str:
        return f"env {self.webhook_env}" if self.webhook_env else f"file {self.webhook_file}"


@dataclass(frozen=True)
class NotifierSettings:
    """The ``notifier:`` section, validated."""

    routes: Mapping[str, tuple[TargetSpec, ...]] = field(default_factory=dict)
    policy: NotifyPolicy = field(default_factory=NotifyPolicy)
    group_id: str = DEFAULT_GROUP_ID
    state_file: str | None = None
    dead_letter_topic: str | None = None
    timeout_s: float = 10.0
    max_retries: int = 4
    backoff_factor: float = 0.5
    max_retry_after_s: float = 0.0  # longer Retry-Afters are scheduled per receiver, not slept in-line
    max_pending: int = 5000
    source: str = "incidents"  # what to consume: slo.incidents (one message per incident) or slo.alerts
    session_timeout_ms: int | None = None  # consumer group session; None: the Kafka client's

    def targets(self) -> list[TargetSpec]:
        return [t for specs in self.routes.values() for t in specs]


@dataclass(frozen=True)
class NotifierConfig:
    """Everything `run_notifier` needs from the config files."""

    settings: NotifierSettings
    kafka: KafkaSettings
    owner_routes: Mapping[str, str]  # dimension -> route, from the main config's owners
    alerts_topic: str
    dead_letter_topic: str
    incidents_topic: str = "slo.incidents"

    @property
    def input_topic(self) -> str:
        """The topic the notifier consumes: incidents or alerts (`notifier.source`)."""
        return self.incidents_topic if self.settings.source == "incidents" else self.alerts_topic


def _seconds(c: list[str], value: Any, path: str, default: float, *, zero_ok: bool = True) -> float:
    """A duration (`30s`, `4h`) or a number of seconds; 0 allowed where it means "off"."""
    if value is None:
        return default
    if value in (0, "0", "0s") and zero_ok:
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value > 0:
            return float(value)
        c.append(f"{path}: must be > 0")
        return default
    try:
        return float(parse_duration(value))
    except (ValueError, TypeError) as e:
        c.append(f"{path}: {e}")
        return default


def _int(c: list[str], value: Any, path: str, default: int, low: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        c.append(f"{path}: must be an integer >= {low}")
        return default
    return value


def _env_name(c: list[str], value: Any, path: str) -> str | None:
    if not isinstance(value, str) or not value or not value.replace("_", "").isalnum():
        c.append(f"{path}: must be an environment variable name (e.g. SLACK_WEBHOOK_SRE)")
        return None
    return value


def _target(c: list[str], route: str, raw: Any, path: str, name: str) -> TargetSpec | None:
    if not isinstance(raw, Mapping):
        c.append(f"{path}: must be a mapping such as {{webhook_env: SLACK_WEBHOOK_{route.upper().replace('-', '_')}}}")
        return None
    for k in raw:
        if k in ("url", "webhook_url", "webhook"):
            c.append(f"{path}.{k}: webhook URLs are secrets and do not belong in the config; "
                     "put the URL in an environment variable (webhook_env) or a file (webhook_file)")
        elif k not in _TARGET_KEYS:
            c.append(f"{path}.{k}: unknown key; allowed: {', '.join(sorted(_TARGET_KEYS))}")
    kind = raw.get("type", "slack")
    if kind not in ("slack", "webhook", "slack_api"):
        c.append(f"{path}.type: must be slack, slack_api or webhook, got {kind!r}")
        return None
    if kind == "slack_api":
        return _api_target(c, route, raw, path, name)
    for k in ("token_env", "token_file", "channel", "api_url"):
        if k in raw:
            c.append(f"{path}.{k}: only slack_api targets take {k}")
    source = _secret_source(c, raw, path, "webhook", "an environment variable name")
    if source is None:
        return None
    env, file = source
    if file is not None and (not isinstance(file, str) or not file):
        c.append(f"{path}.webhook_file: must be a path")
        file = None
    headers: dict[str, str] = {}
    raw_headers = raw.get("headers_env") or {}
    if kind == "slack" and raw_headers:
        c.append(f"{path}.headers_env: only webhook targets take headers")
    elif not isinstance(raw_headers, Mapping):
        c.append(f"{path}.headers_env: must map header names to environment variable names")
    else:
        for h, var in raw_headers.items():
            name_ok = _env_name(c, var, f"{path}.headers_env.{h}")
            if name_ok:
                headers[str(h)] = name_ok
    return TargetSpec(route, name, kind, env, file, headers, **_flags(c, raw, path, kind == "slack"))


def _secret_source(c: list[str], raw: Mapping[str, Any], path: str, prefix: str, env_help: str
                   ) -> tuple[str | None, Any] | None:
    """A secret given as exactly one of `<prefix>_env` (a variable name, checked) or `<prefix>_file`."""
    env, file = raw.get(f"{prefix}_env"), raw.get(f"{prefix}_file")
    if (env is None) == (file is None):
        c.append(f"{path}: give exactly one of {prefix}_env ({env_help}) or {prefix}_file (a path)")
        return None
    if env is not None:
        env = _env_name(c, env, f"{path}.{prefix}_env")
    return env, file


def _flags(c: list[str], raw: Mapping[str, Any], path: str, default: bool) -> dict[str, bool]:
    """A target's `group` and `remind` switches."""
    flags = {}
    for flag in ("group", "remind"):
        v = raw.get(flag, default)
        if not isinstance(v, bool):
            c.append(f"{path}.{flag}: must be true or false")
            v = default
        flags[flag] = v
    return flags


def _api_target(c: list[str], route: str, raw: Mapping[str, Any], path: str, name: str) -> TargetSpec | None:
    """A Slack Web API target: a bot token (env or file, a secret) and a channel."""
    for k in ("webhook_env", "webhook_file", "headers_env"):
        if k in raw:
            c.append(f"{path}.{k}: a slack_api target takes token_env or token_file and channel")
    source = _secret_source(c, raw, path, "token", "an environment variable holding the bot token")
    if source is None:
        return None
    env, file = source
    channel = raw.get("channel")
    if not isinstance(channel, str) or not channel.strip():
        c.append(f"{path}.channel: must name the channel to post in (its id, e.g. C0123456789)")
        return None
    api_url = raw.get("api_url", "https://slack.com/api/")
    if not isinstance(api_url, str) or not api_url.startswith(("https://", "http://")):
        c.append(f"{path}.api_url: must be an http(s) URL")
        api_url = "https://slack.com/api/"
    return TargetSpec(route, name, "slack_api", env, file, {}, channel=channel.strip(),
                      api_url=api_url if api_url.endswith("/") else api_url + "/", **_flags(c, raw, path, True))


def parse_notifier_section(raw: Any, source: str = "notifier") -> NotifierSettings:
    """Validate a ``notifier:`` mapping; raises :class:`NotifierConfigError` naming each path."""
    c: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise NotifierConfigError(["notifier: must be a mapping"], source)
    for k in raw:
        if k not in _SECTION_KEYS:
            c.append(f"notifier.{k}: unknown key; allowed: {', '.join(sorted(_SECTION_KEYS))}")
    routes: dict[str, tuple[TargetSpec, ...]] = {}
    raw_routes = raw.get("routes") or {}
    if not isinstance(raw_routes, Mapping):
        c.append("notifier.routes: must map route names (owner routes, or default) to targets")
        raw_routes = {}
    for route, spec in raw_routes.items():
        path = f"notifier.routes.{route}"
        items = spec if isinstance(spec, list) else [spec]
        if not items:
            c.append(f"{path}: needs at least one target")
        specs = []
        for i, item in enumerate(items):
            name = str(route) if len(items) == 1 else f"{route}[{i}]"
            t = _target(c, str(route), item, path if len(items) == 1 else f"{path}[{i}]", name)
            if t:
                specs.append(t)
        routes[str(route)] = tuple(specs)
    severities = raw.get("reminder_severities", ["page"])
    if not isinstance(severities, list) or not all(s in ("page", "ticket") for s in severities):
        c.append("notifier.reminder_severities: must be a list of page and/or ticket")
        severities = ["page"]
    dl = raw.get("dead_letter_topic")
    if dl is not None and not is_valid_topic_name(dl):
        c.append("notifier.dead_letter_topic: must be a Kafka topic name")
    group_id = raw.get("group_id", DEFAULT_GROUP_ID)
    if not isinstance(group_id, str) or not group_id:
        c.append("notifier.group_id: must be a non-empty string")
    state_file = raw.get("state_file")
    if state_file is not None and (not isinstance(state_file, str) or not state_file):
        c.append("notifier.state_file: must be a path")
    backoff = raw.get("backoff_factor", 0.5)
    if not isinstance(backoff, int | float) or isinstance(backoff, bool) or backoff < 0:
        c.append("notifier.backoff_factor: must be a number >= 0")
        backoff = 0.5
    policy_kw = dict(
        group_window_s=_seconds(c, raw.get("group_window"), "notifier.group_window", 30.0),
        max_group_size=_int(c, raw.get("max_group_size"), "notifier.max_group_size", 10, 1),
        reminder_interval_s=_seconds(c, raw.get("reminder_interval"), "notifier.reminder_interval", 4 * 3600.0),
        reminder_severities=frozenset(severities),
        max_reminders=_int(c, raw.get("max_reminders"), "notifier.max_reminders", 6, 0),
        retry_initial_s=_seconds(c, raw.get("retry_initial"), "notifier.retry_initial", 5.0, zero_ok=False),
        retry_max_s=_seconds(c, raw.get("retry_max"), "notifier.retry_max", 300.0, zero_ok=False),
        forget_after_s=_seconds(c, raw.get("forget_after"), "notifier.forget_after", 7 * 86_400.0, zero_ok=False),
        min_interval_s=_seconds(c, raw.get("min_interval"), "notifier.min_interval", 1.0),
    )
    feed = raw.get("source", "incidents")
    if feed not in SOURCES:
        c.append(f"notifier.source: must be incidents (one message per incident, slo.incidents) or alerts "
                 f"(every alert, slo.alerts), got {feed!r}")
        feed = "incidents"
    try:
        policy = NotifyPolicy(**policy_kw)
    except ValueError as e:
        c.append(f"notifier: {e}")
        policy = NotifyPolicy()
    settings = NotifierSettings(
        routes=routes, policy=policy, group_id=str(group_id), state_file=state_file,
        dead_letter_topic=dl,
        timeout_s=_seconds(c, raw.get("timeout"), "notifier.timeout", 10.0, zero_ok=False),
        max_retries=_int(c, raw.get("max_retries"), "notifier.max_retries", 4, 0),
        backoff_factor=float(backoff),
        max_retry_after_s=_seconds(c, raw.get("max_retry_after"), "notifier.max_retry_after", 0.0),
        max_pending=_int(c, raw.get("max_pending"), "notifier.max_pending", 5000, 1),
        source=str(feed),
        session_timeout_ms=(None if raw.get("session_timeout") is None else int(1000 * _seconds(
            c, raw.get("session_timeout"), "notifier.session_timeout", 45.0, zero_ok=False))),
    )
    if c:
        raise NotifierConfigError(c, source)
    return settings


def _read_yaml(path: str | os.PathLike[str]) -> Any:
    try:
        with Path(path).open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as e:
        raise NotifierConfigError([f"cannot read: {e.strerror}"], str(path)) from None
    except yaml.YAMLError as e:
        raise NotifierConfigError([f"not valid YAML: {e}"], str(path)) from None


def _owner_routes(data: Mapping[str, Any], path: Path) -> dict[str, str]:
    """dimension -> route from the main config's owners (validated by sloguard.core.spec.config when the
    file is a whole sloguard config)."""
    if "models" in data:
        from sloguard.core.spec.config import parse_config

        config = parse_config(data, base_dir=path.parent, source=str(path))
        return {dim: o.route for dim, o in config.owners.items()}
    owners = data.get("owners") or {}
    return {str(d): str(o["route"]) for d, o in owners.items()
            if isinstance(o, Mapping) and isinstance(o.get("route"), str)}


def load_notifier_config(config_path: str | os.PathLike[str] | None = None, *,
                         notifier_path: str | os.PathLike[str] | None = None,
                         env: Mapping[str, str] | None = None) -> NotifierConfig:
    """Read the notifier's config from a sloguard config (its ``notifier:`` section, ``kafka:``
    and ``owners:``) and/or a separate notifier file (a ``notifier:`` section or the bare
    mapping). The separate file's section wins over the main file's."""
    data: dict[str, Any] = {}
    source = "notifier config"
    if config_path is not None:
        raw = _read_yaml(config_path)
        if raw is not None and not isinstance(raw, Mapping):
            raise NotifierConfigError(["(top level): must be a mapping"], str(config_path))
        data = dict(raw or {})
        source = str(config_path)
    section = data.pop("notifier", None)
    owner_routes = _owner_routes(data, Path(config_path)) if config_path is not None else {}
    kafka_raw = data.get("kafka")
    if notifier_path is not None:
        raw = _read_yaml(notifier_path)
        if raw is not None and not isinstance(raw, Mapping):
            raise NotifierConfigError(["(top level): must be a mapping"], str(notifier_path))
        raw = dict(raw or {})
        nested = "notifier" in raw
        section = raw["notifier"] if nested else raw  # a notifier: section, or the bare mapping
        if kafka_raw is None and nested:
            kafka_raw = raw.get("kafka")
        source = str(notifier_path)
    settings = parse_notifier_section(section, source)
    try:
        kafka = KafkaSettings.from_mapping(kafka_raw, env)
    except KafkaConfigError as e:
        raise NotifierConfigError([str(e)], source) from None
    return NotifierConfig(settings, kafka, owner_routes, kafka.topic("alerts"),
                          settings.dead_letter_topic or kafka.topic("dead_letter"), kafka.topic("incidents"))


# -- senders --------------------------------------------------------------------------------------


class Sender(Protocol):
    name: str
    kind: str

    def send(self, batch: Any, *, now: float | None = None) -> SendResult: ...  # a Batch or a Send

    def close(self) -> None: ...


def _read_secret(c: list[str], var: str | None, file: str | None, path: str,
                 env: Mapping[str, str]) -> Secret | None:
    if var is not None:
        value = env.get(var, "").strip()
        if not value:
            c.append(f"{path}: environment variable {var} is not set")
            return None
        return Secret(value, f"env {var}")
    try:
        value = Path(file or "").read_text(encoding="utf-8").strip()
    except OSError as e:
        c.append(f"{path}: cannot read {file}: {e.strerror}")
        return None
    if not value:
        c.append(f"{path}: {file} is empty")
        return None
    return Secret(value, f"file {file}")


class _WebhookAdapter:
    """Gives a GenericWebhookSender the batch interface (one POST per alert)."""

    kind = "webhook"

    def __init__(self, inner: GenericWebhookSender) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def pace_key(self) -> str:
        return self.inner.pace_key

    def send(self, batch: Any, *, now: float | None = None) -> SendResult:
        message = getattr(batch, "message", None)  # an incident notice: the incident message, and what for
        return self.inner.send([{**message, "notice": batch.kind}] if message is not None
                               else [p.alert for p in batch.items])

    def close(self) -> None:
        self.inner.close()


class PreviewSender:
    """Prints what would be sent (dry runs and the demo); always accepts."""

    kind = "preview"

    def __init__(self, name: str, out: TextIO | None = None) -> None:
        self.name = name
        self.out = out

    def send(self, batch: Any, *, now: float | None = None) -> SendResult:
        message = getattr(batch, "message", None)
        text = (render_incident_preview(message, batch.kind, self.name) if message is not None
                else render_batch_preview(batch, now=now))
        print(text, file=self.out or sys.stdout, flush=True)
        return SendResult("ok", ref={"channel": "preview", "ts": str(message.get("id"))} if message else None)

    def close(self) -> None:
        pass


def build_senders(settings: NotifierSettings, *, env: Mapping[str, str] | None = None,
                  sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                  dry_run: bool = False, out: TextIO | None = None) -> tuple[dict[str, Sender], Redactor]:
    """One sender per target, secrets read from the environment or files now (failing fast,
    naming the variable or file, never the value), and a redactor knowing every secret."""
    env = os.environ if env is None else env
    if dry_run:
        return {t.name: PreviewSender(t.name, out) for t in settings.targets()}, Redactor()
    problems: list[str] = []
    senders: dict[str, Sender] = {}
    redactor = Redactor()
    for t in settings.targets():
        path = f"notifier.routes.{t.name}"
        url = _read_secret(problems, t.webhook_env, t.webhook_file, path, env)
        headers = {h: _read_secret(problems, var, None, f"{path}.headers_env.{h}", env)
                   for h, var in t.headers_env.items()}
        if url is None or any(v is None for v in headers.values()):
            continue
        if t.kind != "slack_api" and not url.reveal().lower().startswith(("https://", "http://")):
            problems.append(f"{path}: the URL from {url.source} is not an http(s) URL")
            continue
        common = dict(timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                      backoff_factor=settings.backoff_factor, max_retry_after_s=settings.max_retry_after_s)
        if t.kind == "slack":
            sender: Sender = SlackIncidentWebhookSender(t.name, url, sleep=sleep, clock=clock, **common)
        elif t.kind == "slack_api":
            del common["max_retry_after_s"]
            sender = SlackApiSender(t.name, url, t.channel or "", api_url=t.api_url, sleep=sleep, clock=clock,
                                    **common)
        else:
            sender = _WebhookAdapter(GenericWebhookSender(
                t.name, url, headers={h: v for h, v in headers.items() if v is not None}, **common))
        redactor.add(url)
        for v in headers.values():
            if v is not None:
                redactor.add(v)
        senders[t.name] = sender
    if problems:
        raise NotifierConfigError(problems, "notifier routes")
    return senders, redactor
