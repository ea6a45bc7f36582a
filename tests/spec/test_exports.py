"""The public API of spec and graph is exactly their sorted __all__."""

from __future__ import annotations

import types

import pytest

import dstack_prefect.graph
import dstack_prefect.spec


def _isort_order(name: str) -> tuple[bool, bool, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (not name.isupper(), not name[:1].isupper(), name)


@pytest.mark.parametrize("module", [dstack_prefect.spec, dstack_prefect.graph], ids=["spec", "graph"])
def test_all_is_sorted_and_complete(module: types.ModuleType) -> None:
    """__all__ is sorted (isort-style) and names every public attribute the package defines."""
    public = {
        n
        for n in vars(module)
        if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)
    }
    public.discard("annotations")

    assert module.__all__ == sorted(module.__all__, key=_isort_order)
    assert set(module.__all__) == public
