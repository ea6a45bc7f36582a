"""JSON Schema of the workflow file format, generated from the models.

Editors' YAML language servers read it (``# yaml-language-server: $schema=...``). It rejects
what the loader rejects wherever JSON Schema can say it: keys, types, providers, name, env and
Python version patterns, sizes and counts above zero, `commands` for bash and `image` for docker
(``if``/``then``), exactly one of `workflow`/`tag` in a dep (``oneOf``), paths that start by
climbing out with ``..``. Only the loader sees duplicates, unknown deps, cycles, interpolation
and a ``..`` that climbs out midway (``src/../../x``).
"""

from __future__ import annotations

from typing import Any

from dstack_prefect.spec._models import WorkflowFile

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a `.dstack/workflows.yaml` file."""
    schema = WorkflowFile.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_URI,
        "title": "dstack workflows file",
        **{k: v for k, v in schema.items() if k != "title"},
    }
