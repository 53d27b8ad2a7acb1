"""`sloguard validate --schema`: a JSON Schema of the config file that every example config meets,
that refuses what the parser refuses where a schema can say it, and that follows the parser's key
sets and SLI catalogue (a key the parser learns is a key the schema knows)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from sloguard.apps.cli import main
from sloguard.core.spec.config import _TOP
from sloguard.core.spec.config_schema import config_schema
from sloguard.core.spec.models_section import _MODEL_KEYS
from sloguard.core.spec.sli import CATALOGUE
from sloguard.core.spec.slos_section import _SLO_KEYS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_meets_the_schema(path: Path) -> None:
    errors = sorted(validator().iter_errors(yaml.safe_load(path.read_text())), key=str)
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["slos"][0].update(objectiv=0.9), "objectiv"),
    (lambda d: d["slos"][0].update(sli="availabilty"), "availabilty"),
    (lambda d: d["slos"][0].update(sli={"latency": {"threshold": 100}}), "threshold"),
    (lambda d: d["slos"][0].update(window="30 days"), "30 days"),
    (lambda d: d["slos"][0].pop("model"), "model"),
    (lambda d: next(iter(d["models"].values())).update(segmnts=["region"]), "segmnts"),
])
def test_the_schema_refuses_a_misspelt_or_missing_field(change, where: str) -> None:
    data = yaml.safe_load((ROOT / "examples" / "fraud.yaml").read_text())
    change(data)
    errors = list(validator().iter_errors(data))
    assert errors and any(where in (e.message + json.dumps(list(e.path))) for e in errors), [e.message for e in errors]


def test_the_schema_follows_the_parser_and_the_catalogue() -> None:
    schema = config_schema()
    assert set(schema["properties"]) == _TOP
    slo = schema["properties"]["slos"]["items"]
    assert set(slo["properties"]) == _SLO_KEYS
    assert set(schema["properties"]["models"]["additionalProperties"]["properties"]) == _MODEL_KEYS
    assert set(slo["properties"]["sli"]["oneOf"][1]["properties"]) == set(CATALOGUE)


def test_validate_schema_prints_it(capsys) -> None:
    assert main(["validate", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()
