"""JSON Schema of the workflow file format, generated from the models.

Editors' YAML language servers read it (``# yaml-language-server: $schema=...``). It is draft-07,
the draft the YAML language server (VS Code, Neovim, ...) supports: model definitions live under
``definitions`` (``$defs`` is 2019-09+), and every key has a title and a description (also as
``markdownDescription``, which VS Code renders) for completion and hover. It rejects what the
loader rejects wherever JSON Schema can say it: keys, types, providers, name, env and Python
version patterns, sizes and counts above zero, `commands` for bash and `image` for docker
(``if``/``then``), exactly one of `workflow`/`tag` in a dep (``oneOf``), paths that start by
climbing out with ``..``. Only the loader sees duplicates, unknown deps, cycles, interpolation
and a ``..`` that climbs out midway (``src/../../x``).
"""

from __future__ import annotations

from typing import Any

from dstack_prefect.spec._models import WorkflowFile

SCHEMA_URI = "http://json-schema.org/draft-07/schema#"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a `.dstack/workflows.yaml` file."""
    schema = WorkflowFile.model_json_schema(mode="validation", ref_template="#/definitions/{model}")
    definitions = schema.pop("$defs", {})
    for model in (schema, *definitions.values()):
        for name, prop in model.get("properties", {}).items():
            prop.setdefault("title", name.replace("_", " ").title())  # pydantic leaves it off a $ref
            prop["markdownDescription"] = prop["description"]  # VS Code's hover renders `code`
    return {
        "$schema": SCHEMA_URI,
        "title": "dstack workflows file",
        **{k: v for k, v in schema.items() if k != "title"},
        "definitions": definitions,
    }
