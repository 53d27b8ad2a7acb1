"""YAML as sloguard reads its files: safe, and a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys, so a second `slos:` section silently replaces the first
and its SLOs vanish without a word. Every reader of a user's YAML goes through `load_yaml`.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that names one key twice."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise DuplicateKeyError(
                    None, None,
                    f"key {key!r} appears twice in one mapping (first on line {first}); "
                    "YAML would silently keep only the last",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes | Any) -> Any:
    """Parse one YAML document (text or an open file) like `yaml.safe_load`, refusing duplicate keys."""
    return yaml.load(text, Loader=_StrictLoader)


def load_yaml_all(text: str) -> list[Any]:
    """Every document of a YAML stream, refusing duplicate keys."""
    return list(yaml.load_all(text, Loader=_StrictLoader))
