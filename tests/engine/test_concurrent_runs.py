"""Runs started at the same moment (two terminals, a CI job beside a laptop): names and tags.

The races are driven from one test: the two sides' steps run in the order that breaks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from dstack_prefect.engine._cache import plan_decisions
from dstack_prefect.engine._cached import all_reused, record_cached_run
from dstack_prefect.engine._launch import create_flow_run
from dstack_prefect.engine._names import claim_run_name
from dstack_prefect.errors import DstackError
from dstack_prefect.graph import build_plan
from dstack_prefect.spec import load_text
from dstack_prefect.storage import ArtifactStore
from tests.conftest import CLI, Server
from tests.engine.test_local_runs import submitted_name, wait_finished

pytestmark = pytest.mark.service("prefect")

ONE = "workflows:\n  - name: w\n    provider: bash\n    commands: [echo hi]\n"


def _names(api: PrefectAPI, name: str) -> list[str]:
    return [r["id"] for r in api.flow_runs(names=[name])]


def test_two_runs_given_one_name_at_the_same_moment_keep_one(prefect_server: Server, tmp_path: Path) -> None:
    """Both `dstack run --name X` passed the "unused" check before either created its run: the
    second to create it removes its own and says so; the first keeps the name."""
    plan = build_plan(load_text(ONE), "w", [], "same-moment-1")
    with PrefectAPI(prefect_server.url) as api:
        first = create_flow_run(api, plan, tmp_path, {})
        try:
            with pytest.raises(DstackError) as caught:
                create_flow_run(api, plan, tmp_path, {})
            assert caught.value.message == "another run named 'same-moment-1' was started at the same moment"
            assert caught.value.hint == "pick another --name, or run again for a drawn one"
            assert _names(api, "same-moment-1") == [first["id"]]
        finally:  # a Pending run nobody runs: `ps` of the tests after would list it
            api.delete_flow_run(first["id"])


def test_the_first_run_keeps_its_name_when_both_check_after_both_created(
    prefect_server: Server, tmp_path: Path
) -> None:
    """Both created their flow run before either checked: whichever checks first, the later
    one goes and the earlier one stays."""
    with PrefectAPI(prefect_server.url) as api:
        first = api.create_flow_run(
            api.ensure_flow("dstack-run"), name="same-moment-2", parameters={}, tags=["dstack"]
        )
        second = api.create_flow_run(
            api.ensure_flow("dstack-run"), name="same-moment-2", parameters={}, tags=["dstack"]
        )
        try:
            with pytest.raises(DstackError):
                claim_run_name(api, second)
            claim_run_name(api, first)
            assert _names(api, "same-moment-2") == [first["id"]]
        finally:  # Pending runs nobody runs: `ps` of the tests after would list them
            for fr in api.flow_runs(names=["same-moment-2"]):
                api.delete_flow_run(fr["id"])


TAGGED = """
workflows:
  - name: slow
    provider: bash
    commands:
      - mkdir -p out && echo x > out/x.txt
      - 'while [ ! -e "$GO" ]; do sleep 0.1; done'
    artifacts: [out]
"""


def test_a_tag_made_while_a_run_tagging_it_runs_is_not_moved(
    cli: CLI, make_repo: Any, dstack_home: Path, prefect_server: Server, tmp_path: Path
) -> None:
    """`dstack run -t T` checks T is new at its start; a `tags add T` while it runs wins, and the
    run says it is not tagged rather than moving the tag silently at its end."""
    repo = make_repo({".dstack/workflows.yaml": TAGGED})
    go = tmp_path / "go"
    env = {**prefect_server.env(dstack_home), "GO": str(go)}
    done = cli("run", "slow", "-d", "--name", "first-run", cwd=repo, env=env)
    go.touch()
    with PrefectAPI(prefect_server.url) as api:
        assert wait_finished(api, "first-run").status == "done", done.text
        go.unlink()
        started = cli("run", "slow", "-d", "--rerun", "-t", "mine", cwd=repo, env=env)
        assert started.code == 0, started.text
        name = submitted_name(started.out)
        tagged = cli("tags", "add", "mine", "first-run", "-y", cwd=repo, env=env)
        assert tagged.code == 0, tagged.text
        go.touch()
        assert wait_finished(api, name).status == "done"
    store = ArtifactStore(dstack_home / "store")
    assert store.get_tag("mine").run == "first-run"
    logs = cli("logs", name, cwd=repo, env=env).text
    assert (
        f"the run is not tagged mine: the tag was made while it ran, naming run first-run; "
        f"move it with `dstack tags add mine {name} -y`"
    ) in logs


def test_a_tag_made_while_an_all_reused_run_is_recorded_is_not_moved(
    cli: CLI, make_repo: Any, dstack_home: Path, prefect_server: Server
) -> None:
    """`dstack run -t T` whose steps are all reused checks T is new at its start too; a
    `tags add T` before it records the run wins, as for a run that executes."""
    repo = make_repo({".dstack/workflows.yaml": ONE})
    done = cli("run", "w", "--name", "reused-first", cwd=repo)
    assert done.code == 0, done.text
    store = ArtifactStore(dstack_home / "store")
    plan = build_plan(load_text(ONE), "w", [], "reused-second")
    decisions = plan_decisions(plan, store, repo, executor="local")
    assert all_reused(decisions)
    store.add_tag("mine", "reused-first", "w")  # the other side's `tags add`, after the check
    with PrefectAPI(prefect_server.url) as api:
        recorded = record_cached_run(api, store, plan, decisions, repo, {"executor": "local", "tag": "mine"})
        assert recorded.warning == (
            "the run is not tagged mine: the tag was made while it ran, naming run reused-first; "
            "move it with `dstack tags add mine reused-second -y`"
        )
    assert store.get_tag("mine").run == "reused-first"
    logs = cli("logs", "reused-second", cwd=repo).text
    assert recorded.warning in logs
    ps = cli("ps", "-a", cwd=repo).out
    assert "mine" not in ps.split("reused-second")[1].splitlines()[0]
    again = cli("run", "w", "--name", "reused-third", "-t", "theirs", cwd=repo)
    assert "every step reused, nothing ran" in again.out, again.text
    assert store.get_tag("theirs").run == "reused-third"
    assert "tagged the run as theirs" in cli("logs", "reused-third", cwd=repo).text
