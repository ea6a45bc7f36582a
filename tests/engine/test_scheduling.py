"""Which ready step takes a free slot first (pure, no services)."""

from __future__ import annotations

from dstack_prefect.engine._flow import critical_first
from dstack_prefect.graph import Plan, Step


def test_the_step_holding_up_the_longest_chain_starts_first() -> None:
    """With one slot and two ready steps, the one three steps before the target goes before the
    one that only the target waits for, whatever the plan's order (a -> target, b -> c -> d -> target)."""
    plan = Plan(
        target="target",
        steps=[
            Step(name="a", commands=["true"]),
            Step(name="b", commands=["true"]),
            Step(name="c", commands=["true"], upstream=["b"]),
            Step(name="d", commands=["true"], upstream=["c"]),
            Step(name="target", commands=["true"], upstream=["a", "d"]),
        ],
    )

    order = critical_first(plan)

    assert order == ["b", "c", "a", "d", "target"]
    assert order.index("b") < order.index("a")


def test_ties_keep_the_plan_order() -> None:
    """Steps with equally long chains after them keep their topological order."""
    plan = Plan(
        target="t",
        steps=[Step(name=n, commands=["true"]) for n in ("x", "y", "z")]
        + [Step(name="t", commands=["true"], upstream=["x", "y", "z"])],
    )

    assert critical_first(plan) == ["x", "y", "z", "t"]
