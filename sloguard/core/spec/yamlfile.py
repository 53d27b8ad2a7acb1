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


def key_lines(text: str) -> dict[str, int]:
    """The line (1-based) of every key and list item of a YAML document, by the field path sloguard's
    messages use: `slos[3].budgeting.target`. Empty when the text does not parse."""
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    sub = f"{path}.{key_node.value}" if path else str(key_node.value)
                    lines.setdefault(sub, key_node.start_mark.line + 1)
                    walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}[{i}]"
                lines.setdefault(sub, item.start_mark.line + 1)
                walk(item, sub)

    if root is not None:
        walk(root, "")
    return lines


def line_of(problem: str, lines: dict[str, int]) -> int | None:
    """The line of the deepest field a `path: message` problem names (its path, then its parents)."""
    path = problem.split(": ", 1)[0].split(" ", 1)[0]
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None

