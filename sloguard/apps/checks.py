"""One check of a config file, called by every command before it starts and by `sloguard validate`.

Every section the file holds (`models`, `slos`, `alerting`, `owners`, `limits`, ... by the core's
parser; `kafka` as `run` reads it; `notifier`; `rollout` with its `controller`) is checked, and all
problems of all sections are reported together, each with its field path and, where the YAML
parser knows it, its line. A command therefore never starts on a config `validate` would refuse,
and `validate` never accepts one a command would refuse. Secrets named by the file (webhook URLs,
tokens in the environment) are read only when the command that needs them runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sloguard.core.spec.config import load_config
from sloguard.core.spec.model import Config, ConfigError
from sloguard.core.spec.yamlfile import key_lines, load_yaml

if TYPE_CHECKING:
    from sloguard.core.rollout.spec import RolloutSpec


@dataclass
class CheckedConfig:
    """A config file that passed every section's check."""

    path: Path
    config: Config
    rollout: RolloutSpec | None = None
    warnings: list[str] = field(default_factory=list)


def check_config_file(path: str | Path, *, baseline_pending: bool = False) -> CheckedConfig:
    """Check every section of the file at `path`; raise one `ConfigError` listing every problem."""
    path = Path(path)
    problems: list[str] = []
    config: Config | None = None
    try:
        config = load_config(path, baseline_pending=baseline_pending)
    except ConfigError as e:
        if e.problems == [f"{path}: no such file"]:
            raise
        problems += e.problems
    text = path.read_text()
    data = load_yaml(text)
    if not isinstance(data, dict):
        raise ConfigError(problems or ["the file must be a mapping of sections"], str(path), key_lines(text))
    problems += _kafka_problems(data)
    problems += _notifier_problems(data, path)
    rollout, warnings = None, []
    if config is not None:
        rollout, warnings, rollout_problems = _rollout(data, path, config)
        problems += rollout_problems
    elif data.get("rollout") is not None:
        warnings.append("rollout: not checked until the sections above are valid (it refers to their models)")
    if problems or config is None:
        raise ConfigError(problems, str(path), key_lines(text))
    return CheckedConfig(path, config, rollout, warnings)


def is_whole_config(path: str | Path) -> bool:
    """Whether the file is a whole sloguard config (it has `models:` or `slos:`), as opposed to a
    service-only file such as the notifier's (`kafka:`, `notifier:`, `owners:`), which that
    service's own reader checks. A file that cannot be read counts as whole, so that
    `check_config_file` reports why."""
    try:
        data = load_yaml(Path(path).read_text())
    except Exception:  # any unreadable file goes to the full check, which names the problem
        return True
    return not isinstance(data, dict) or "models" in data or "slos" in data


def _kafka_problems(data: dict[str, Any]) -> list[str]:
    """The `kafka:` section as `run` reads it (environment overrides come at run time)."""
    from sloguard.connectors.kafka_config import KafkaConfigError, KafkaSettings

    try:
        KafkaSettings.from_config(data, env={})
    except KafkaConfigError as e:
        text = str(e)
        return [text if text.startswith("kafka") else f"kafka: {text}"]
    return []


def _notifier_problems(data: dict[str, Any], path: Path) -> list[str]:
    """Routes, targets and pacing as `sloguard notifier` reads them (`notifier --check` reads secrets)."""
    if data.get("notifier") is None:
        return []
    from sloguard.connectors.notifier_config import NotifierConfigError, parse_notifier_section

    try:
        parse_notifier_section(data["notifier"], str(path))
    except NotifierConfigError as e:
        return list(e.problems)
    return []


def _rollout(data: dict[str, Any], path: Path, config: Config) -> tuple[RolloutSpec | None, list[str], list[str]]:
    """The `rollout:` section (policy, canary analysis, overrides, the controller's settings):
    (spec or None, warnings, problems)."""
    raw = data.get("rollout")
    if raw is None:
        return None, [], []
    from sloguard.connectors.controller_settings import controller_settings
    from sloguard.core.rollout.spec import parse_rollout

    problems: list[str] = []
    spec = None
    try:
        spec = parse_rollout(raw, config, str(path))
    except ConfigError as e:
        problems += e.problems
    if isinstance(raw, dict) and raw.get("controller") is not None:
        try:  # tokens come from the environment at run time; a token_file must be readable now
            controller_settings(raw["controller"], path.parent, env={}, source=str(path))
        except ConfigError as e:
            problems += e.problems
    warnings = []
    if spec is not None and spec.canary.enabled:
        for m in config.models.values():
            if "variant" not in m.segments:
                warnings.append(
                    f"models.{m.name}.segments: no variant, so rollout.canary has no canary and stable budgets "
                    f"to compare for {m.name} and its canaries will only ever hold (add variant to the segments)"
                )
    return spec, warnings, problems
