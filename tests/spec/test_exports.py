"""The public API of spec and graph is exactly their sorted __all__."""

from __future__ import annotations

import types

import pytest

import dstack_prefect.graph
import dstack_prefect.spec


@pytest.mark.parametrize("module", [dstack_prefect.spec, dstack_prefect.graph], ids=["spec", "graph"])
def test_all_is_sorted_and_complete(module: types.ModuleType) -> None:
    """__all__ is sorted and names every public attribute the package defines."""
    public = {n for n in vars(module) if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)}
    public.discard("annotations")

    assert module.__all__ == sorted(module.__all__)
    assert set(module.__all__) == public
