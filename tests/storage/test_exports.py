"""The storage package's public names are exactly its sorted ``__all__``."""

from __future__ import annotations

import dstack_prefect.storage as storage


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted, and every public name it lists exists."""
    public = sorted(n for n in dir(storage) if not n.startswith("_") and n not in {"annotations"})

    assert sorted(storage.__all__) == storage.__all__
    assert [n for n in public if n in storage.__all__] == storage.__all__
