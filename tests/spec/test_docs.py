"""docs/workflows.md stays in step with the models: it names every key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dstack_prefect.spec import load_text
from dstack_prefect.spec._models import MODELS

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
FIELDS = sorted({(model.__name__, name) for model in MODELS for name in model.model_fields})


@pytest.mark.parametrize(("model", "field"), FIELDS, ids=[f"{m}.{f}" for m, f in FIELDS])
def test_docs_name_every_field(model: str, field: str) -> None:
    """Each model field appears in the reference as `field`."""

    assert f"`{field}`" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "option",
    [
        "--env",
        "--artifact",
        "--dep",
        "--working-dir",
        "--interruptible",
        "--cpu",
        "--memory",
        "--gpu",
        "--gpu-name",
        "--gpu-memory",
        "--shm-size",
        "--port",
    ],
)
def test_docs_name_every_run_option(option: str) -> None:
    """Each `dstack run` override option is documented."""

    assert option in DOC.read_text(encoding="utf-8")


EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_docs_examples_load_without_warnings(example: str) -> None:
    """Each YAML example in the reference is a valid workflow file with no legacy form."""

    assert load_text(example).warnings == []
