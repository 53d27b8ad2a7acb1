"""The controller's settings, read together by `load_controller_config`.

``rollout.controller`` in the config (listen address, group, auth, audit log, state, clock), the
gate tokens (environment or file) and the Kafka section.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.rollout.spec import RolloutSpec, parse_rollout
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import Config, ConfigError
from sloguard.core.spec.timeutil import parse_duration

DEFAULT_TOKEN_ENV = "SLOGUARD_GATE_TOKEN"


_CONTROLLER_KEYS = {
    "listen", "group_id", "token_env", "token_file", "auth", "audit_log", "state_path", "clock",
    "forget_after", "evaluate_every",
}  # fmt: skip


@dataclass(frozen=True)
class ControllerSettings:
    """Where the gate listens, who may call it, where it writes, and which clock it uses."""

    host: str = "127.0.0.1"
    port: int = 8080
    group_id: str = "sloguard-controller"
    tokens: tuple[str, ...] = ()
    auth: str = "bearer"  # bearer | none
    audit_log: Path | None = None
    state_path: Path | None = None
    clock: str = "wall"  # wall | event
    forget_after_s: int = 7 * 86_400
    evaluate_every_s: float = 5.0
    token_source: str = ""

    def redacted(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tokens"] = f"{len(self.tokens)} token(s)"
        return d


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = str(value).rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be HOST:PORT (e.g. 0.0.0.0:8080), got {value!r}")
    return host or "0.0.0.0", int(port)


def read_tokens(token_env: str, token_file: str | Path | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Tokens from the environment variable and/or the file (one per line, ``#`` comments)."""
    env = os.environ if env is None else env
    tokens = []
    if env.get(token_env, "").strip():
        tokens.append(env[token_env].strip())
    if token_file:
        for line in Path(token_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
    return tokens


def controller_settings(
    raw: Any, base_dir: Path, env: Mapping[str, str] | None = None, source: str = "config"
) -> ControllerSettings:
    """Read ``rollout.controller``; raises `ConfigError` naming bad fields."""
    problems: list[str] = []
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(["rollout.controller: must be a mapping"], source)
    for k in raw:
        if k not in _CONTROLLER_KEYS:
            problems.append(
                f"rollout.controller.{k}: unknown key (expected one of: {', '.join(sorted(_CONTROLLER_KEYS))})"
            )
    host, port = "127.0.0.1", 8080
    if "listen" in raw:
        try:
            host, port = parse_listen(raw["listen"])
        except ValueError as e:
            problems.append(f"rollout.controller.listen: {e}")
    auth = raw.get("auth", "bearer")
    if auth not in ("bearer", "none"):
        problems.append(f"rollout.controller.auth: must be bearer or none, got {auth!r}")
    clock = raw.get("clock", "wall")
    if clock not in ("wall", "event"):
        problems.append(f"rollout.controller.clock: must be wall or event, got {clock!r}")
    durations = {}
    for key, default in (("forget_after", 7 * 86_400), ("evaluate_every", 5)):
        try:
            durations[key] = parse_duration(raw[key]) if key in raw else default
        except ValueError as e:
            problems.append(f"rollout.controller.{key}: {e}")
            durations[key] = default
    token_env = str(raw.get("token_env", DEFAULT_TOKEN_ENV))
    token_file = raw.get("token_file")
    tokens: list[str] = []
    try:
        tokens = read_tokens(token_env, base_dir / token_file if token_file else None, env)
    except OSError as e:
        problems.append(f"rollout.controller.token_file: cannot read {token_file}: {e.strerror or e}")
    if problems:
        raise ConfigError(problems, source)

    def path(key: str) -> Path | None:
        return base_dir / str(raw[key]) if raw.get(key) else None

    return ControllerSettings(
        host=host,
        port=port,
        group_id=str(raw.get("group_id", "sloguard-controller")),
        tokens=tuple(tokens),
        auth=auth,
        audit_log=path("audit_log"),
        state_path=path("state_path"),
        clock=clock,
        forget_after_s=durations["forget_after"],
        evaluate_every_s=float(durations["evaluate_every"]),
        token_source=f"${token_env}" + (f" + {token_file}" if token_file else ""),
    )


def load_controller_config(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config, RolloutSpec, ControllerSettings, KafkaSettings]:
    """Read the sloguard YAML: the core config, its ``rollout:`` section and the Kafka settings.

    The ``rollout:`` key is taken out before the core config is validated, so this works whether
    or not `sloguard.core.spec.config` knows about it.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"], str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping"], str(path))
    data = dict(data)
    rollout = data.pop("rollout", None) or {}
    config = parse_config(data, base_dir=path.parent, source=str(path))
    spec = parse_rollout(rollout, config, str(path))
    raw_controller = rollout.get("controller") if isinstance(rollout, dict) else None
    settings = controller_settings(raw_controller, path.parent, env, str(path))
    kafka = KafkaSettings.from_config(data, env)
    return config, spec, settings, kafka
