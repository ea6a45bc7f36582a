"""Whatever the text, the loader returns workflows or raises SpecErrors, nothing else."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstack_prefect.errors import SpecErrors
from dstack_prefect.spec import Workflows, load_text

KEYS = st.sampled_from(
    [
        "workflows",
        "name",
        "provider",
        "commands",
        "resources",
        "gpu",
        "memory",
        "deps",
        "ports",
        "env",
        "artifacts",
        "cache",
        "python",
        "image",
        "entrypoint",
        "tag",
        "workflow",
        "path",
        "count",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["bash", "docker", "16GB", "3.10", ":tag", "a=b", "${{ run.args }}", "${{ x", "$$", "7860:80"]
    ),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=25,
)


def _load(text: str) -> None:
    try:
        result = load_text(text)
    except SpecErrors as exc:
        assert exc.errors
        assert all(e.line >= 1 and e.col >= 1 for e in exc.errors)
    else:
        assert isinstance(result, Workflows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_random_structures(tree: object) -> None:
    """Random nested data under `workflows:` loads or fails with located SpecErrors."""
    _load(yaml.safe_dump({"workflows": [tree]}))


@settings(max_examples=150, deadline=None)
@given(tree=TREES)
def test_random_documents(tree: object) -> None:
    """Random nested data as the whole document loads or fails with located SpecErrors."""
    _load(yaml.safe_dump(tree))


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text(text: str) -> None:
    """Random text (often not YAML at all) loads or fails with located SpecErrors."""
    _load(text)


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(min_size=1, max_size=8),
    provider=st.sampled_from(["bash", "docker", "code", "lab", "notebook", "bsh"]),
    body=st.dictionaries(KEYS, SCALARS, max_size=4),
)
def test_random_workflows(name: str, provider: str, body: dict[str, object]) -> None:
    """A workflow item with random keys and values loads or fails with located SpecErrors."""
    _load(yaml.safe_dump({"workflows": [{"name": name, "provider": provider, **body}]}))
