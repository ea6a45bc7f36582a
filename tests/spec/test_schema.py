"""`dstack schema` accepts every real workflow file and rejects the table's shape errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from dstack_prefect.cli import app
from dstack_prefect.spec import load_text
from tests.spec.bad_inputs import CASES, Case
from tests.spec.conftest import COMPAT_FILES

SCHEMA_CASES = [c for c in CASES if c.schema]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    """A validator for the schema `dstack schema` prints."""
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema: dict[str, Any] = json.loads(result.stdout)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("source", COMPAT_FILES, ids=[p.stem for p in COMPAT_FILES])
def test_accepts_compat_file(source: Path, validator: jsonschema.protocols.Validator) -> None:
    """Every real file is valid against the schema."""

    errors = [e.message for e in validator.iter_errors(yaml.safe_load(source.read_text()))]

    assert errors == []


def test_there_are_schema_cases() -> None:
    """The table marks a good share of its cases as schema-level."""

    assert len(SCHEMA_CASES) >= 25


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c.id for c in SCHEMA_CASES])
def test_rejects_schema_level_bad_input(case: Case, validator: jsonschema.protocols.Validator) -> None:
    """A shape error the loader reports is also rejected by the schema."""
    (text,) = case.files.values()

    assert not validator.is_valid(yaml.safe_load(text))


GOOD_BODIES = {
    "port-mapping-form": "    ports: [{port: 8000, local_port: 3000}]\n",
    "port-with-spaces": '    ports: [" 8000 : 3000 "]\n',
    "port-leading-zero": '    ports: ["08000"]\n',
    "port-highest": '    ports: ["65535:1"]\n',
    "gpu-count-as-float": "    resources:\n      gpu: 2.0\n",
    "cpu-as-float": "    resources:\n      cpu: 2.0\n",
}


@pytest.mark.parametrize("body", GOOD_BODIES.values(), ids=list(GOOD_BODIES))
def test_accepts_what_the_loader_accepts(body: str, validator: jsonschema.protocols.Validator) -> None:
    """An unusual form the loader takes is not flagged by an editor using the schema."""
    text = "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n" + body
    load_text(text)

    errors = [e.message for e in validator.iter_errors(yaml.safe_load(text))]

    assert errors == []


def test_accepts_an_x_key_for_shared_settings(validator: jsonschema.protocols.Validator) -> None:
    """A top-level `x-` key, which the loader passes over, is no editor error either."""
    text = "x-common: &c {provider: bash}\nworkflows:\n  - <<: *c\n    name: a\n    commands: [x]\n"
    load_text(text)

    assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []


class TestForEditors:
    """The schema is one the YAML language server of VS Code, Neovim and others reads: draft-07
    (it does not support 2020-12 and says so), every `$ref` resolvable, and a title and a
    description on every key for completion and hover."""

    @pytest.fixture(scope="class")
    def schema(self) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["schema"])
        assert result.exit_code == 0
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded

    def test_draft_07(self, schema: dict[str, Any]) -> None:
        """It declares draft-07 (http, as its meta-schema is registered) and is valid against it."""

        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        jsonschema.Draft7Validator.check_schema(schema)

    def test_refs_point_into_definitions(self, schema: dict[str, Any]) -> None:
        """Every `$ref` names an entry of `definitions` (draft-07's keyword; `$defs` is 2019-09+)
        and has no validating keyword beside it, which draft-07 would ignore."""
        refs = list(_nodes_with(schema, "$ref"))

        assert "$defs" not in schema
        assert {r["$ref"].removeprefix("#/definitions/") for r in refs} <= set(schema["definitions"])
        assert [
            r for r in refs if set(r) - {"$ref", "title", "description", "markdownDescription", "default"}
        ] == []

    def test_every_key_has_a_title_and_a_description(self, schema: dict[str, Any]) -> None:
        """Each key of the file and of each block shows a title and a description in the editor."""
        models = [schema, *schema["definitions"].values()]
        keys = [(name, prop) for model in models for name, prop in model["properties"].items()]

        assert [name for name, prop in keys if not (prop.get("title") and prop.get("description"))] == []

    def test_hover_renders_the_backticks(self, schema: dict[str, Any]) -> None:
        """Each key's description is also its markdownDescription, which VS Code's YAML hover
        renders (`A100` in code font rather than with its backticks)."""
        models = [schema, *schema["definitions"].values()]
        props = [prop for model in models for prop in model["properties"].values()]

        assert [p["description"] for p in props if p.get("markdownDescription") != p["description"]] == []


def _nodes_with(node: Any, key: str) -> Any:
    """Every mapping under ``node`` that holds ``key``."""
    if isinstance(node, dict):
        if key in node:
            yield node
        for value in node.values():
            yield from _nodes_with(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes_with(value, key)
