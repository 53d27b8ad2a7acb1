"""A JSON Schema of sloguard's config file, for editors (`sloguard validate --schema`).

With it, an editor completes section and field names, lists the SLI catalogue with each SLI's
parameters, and flags a misspelt key as you type (e.g. VS Code's YAML extension:
`# yaml-language-server: $schema=sloguard.schema.json`). It is derived from what the parser
accepts (its key sets and the SLI catalogue), so the two cannot drift apart; `sloguard validate`
stays the authority: it also checks what a schema cannot say (objectives against burn rates,
windows against slices, baselines on disk).

Pure: builds a dict.
"""

from __future__ import annotations

from typing import Any

from sloguard.core.spec.config import _TOP
from sloguard.core.spec.models_section import _MODEL_KEYS
from sloguard.core.spec.sli import CATALOGUE, DIMENSIONS
from sloguard.core.spec.slos_section import _SLO_KEYS, DRIFT_METHODS

SCHEMA_ID = "https://sloguard.dev/schemas/config.schema.json"

DURATION: dict[str, Any] = {
    "description": "a duration: 30s, 5m, 1h30m, 7d, 2w, or whole seconds",
    "oneOf": [
        {"type": "string", "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", "minLength": 2},
        {"type": "integer", "minimum": 1},
    ],
}
_PARAM: dict[str, dict[str, Any]] = {
    "number": {"type": "number", "exclusiveMinimum": 0},
    "count": {"type": "integer", "minimum": 1},
    "fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "duration": DURATION,
    "source": {"enum": ["inference", "features"]},
    "value": {"type": ["string", "number", "boolean"], "description": "a class label"},
    "names": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
    "name": {"type": "string", "minLength": 1},
    "drift_method": {"enum": list(DRIFT_METHODS)},
}
_OPEN = {"type": "object", "description": "see the README"}  # sections with parsers of their own


def sli_schema() -> dict[str, Any]:
    """An SLI name, or a one-key mapping of an SLI name to its parameters (from the catalogue)."""
    plain = [name for name, kind in CATALOGUE.items() if not kind.required]
    with_params = {
        name: {
            "description": kind.doc,
            "type": ["object", "null"],
            "properties": {p: {**_PARAM.get(t, {}), "description": t} for p, t in kind.params.items()},
            "required": list(kind.required),
            "additionalProperties": False,
        }
        for name, kind in CATALOGUE.items()
    }
    return {
        "oneOf": [
            {"enum": plain, "description": "an SLI without parameters"},
            {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": with_params,
             "additionalProperties": False},
        ]
    }


def config_schema() -> dict[str, Any]:
    """The whole file: its sections, models and SLOs in detail, other sections as open objects."""
    slo = {
        "type": "object",
        "properties": {key: {} for key in sorted(_SLO_KEYS)} | {
            "name": {"type": "string", "minLength": 1, "description": "unique SLO name"},
            "model": {"type": "string", "description": "a key of models"},
            "dimension": {"enum": list(DIMENSIONS)},
            "sli": sli_schema(),
            "objective": {"description": "a number, or {relative_to_baseline: r} / {max_degradation: d}",
                          "oneOf": [{"type": "number"}, {"type": "object"}]},
            "window": {
                "description": "a rolling window (a duration, e.g. 30d), or a calendar period whose budget starts "
                               "over at local midnight on the 1st (month) or Monday (week)",
                "oneOf": [
                    DURATION,
                    {
                        "type": "object",
                        "required": ["calendar"],
                        "additionalProperties": False,
                        "properties": {
                            "calendar": {"enum": ["month", "week"]},
                            "timezone": {"type": "string", "minLength": 1, "description": "IANA name (default UTC)"},
                        },
                    },
                ],
            },
            "budgeting": {"type": "object"},
            "alerting": {"type": "object"},
            "owner": {"type": "string"},
            "description": {"type": "string"},
        },
        "required": ["name", "model", "dimension", "sli", "objective", "window"],
        "additionalProperties": False,
    }
    model = {
        "type": "object",
        "properties": {key: {} for key in sorted(_MODEL_KEYS)} | {
            "segments": _PARAM["names"],
            "features": _PARAM["names"],
            "no_data_after": DURATION,
            "label_delay": DURATION,
            "baseline": {"type": "string", "description": "a baseline file (sloguard baseline), relative to this file"},
            "description": {"type": "string"},
        },
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {key: _OPEN for key in sorted(_TOP)} | {
        "evaluation_interval": DURATION,
        "allowed_lateness": {"oneOf": [DURATION, {"const": 0}, {"const": "0"}, {"const": "0s"}]},
        "models": {"type": "object", "additionalProperties": model, "minProperties": 1},
        "slos": {"type": "array", "items": slo, "minItems": 1},
        "adjustments": {"type": "array", "items": {"type": "object"}},
        "scale": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "shards": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 8,
                           "description": "per model: keys of the per-event stage (dedupe, label join); at least "
                                          "4x the workers you expect; fixed once a recovery dir holds state"},
                "judge_parts": {"type": "integer", "minimum": 1, "maximum": 64,
                                "description": "per model: keyed parts of the judge, each judging the SLOs whose "
                                               "name hashes to it; default: the workers `sloguard run` starts "
                                               "(-w x processes); fixed once a recovery dir holds state"},
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "sloguard config",
        "type": "object",
        "properties": properties,
        "required": ["models", "slos"],
        "additionalProperties": False,
    }
