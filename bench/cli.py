"""Time `dstack ps -a` next to `prefect flow-run ls` with 1000 runs recorded on one server.

    python bench/cli.py                 # 1000 runs, 3 rounds each
    BENCH_RUNS=2000 BENCH_ROUNDS=5 python bench/cli.py

A fresh temp DSTACK_HOME, PREFECT_API_URL unset, so `dstack server start` starts its own local
server (not timed); the URL comes from `dstack server status --json`. The runs are recorded
without running anything: flow runs created through the Prefect client the way dstack's
create_flow_run does (flow "dstack-run", tags ["dstack", "workflow:NAME"], parameters
{plan, repo_root, options} with a real 3-step plan), then forced to a final state (COMPLETED
named Done, every 7th FAILED). Both commands then list them, same server, same environment;
`prefect flow-run ls` gets `--limit` = the number of runs so it lists all of them too (the
JSON count is checked once). Prints best and median of the rounds and the ratio; nothing is
asserted. The server is stopped at the end (`dstack server stop`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from overhead import start_server, stop_server

RUNS = int(os.environ.get("BENCH_RUNS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = 4  # SQLite: more writers only earn 503s
REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = ["prep", "train", "evaluate", "report"]


def sample_plan() -> dict[str, Any]:
    """A real plan, as `dstack run evaluate` in this repo would store it."""
    from dstack_prefect.graph import build_plan
    from dstack_prefect.spec import load_workflows

    plan = build_plan(load_workflows(REPO), "evaluate", [], "placeholder-name-1")
    return plan.model_dump(mode="json")  # type: ignore[no-any-return]


async def retry(call: Any, tries: int = 5) -> Any:
    """The local SQLite server answers 503 when writers pile up: wait and try again."""
    for attempt in range(tries):
        try:
            return await call()
        except Exception:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(1 + attempt)
    return None


async def record_runs(n: int, plan: dict[str, Any]) -> None:
    from prefect import get_client
    from prefect.states import Completed, Failed, Pending

    from dstack_prefect.engine._flow import run_workflow

    sem = asyncio.Semaphore(CONCURRENCY)
    async with get_client() as client:

        async def one(i: int) -> None:
            name = f"bench-run-{i + 1}"
            workflow = WORKFLOWS[i % len(WORKFLOWS)]
            params = {
                "plan": {**plan, "run_name": name, "target": workflow},
                "repo_root": str(REPO),
                "options": {"executor": "local"},
            }
            async with sem:
                fr = await retry(
                    lambda: client.create_flow_run(
                        run_workflow,
                        name=name,
                        parameters=params,
                        tags=["dstack", f"workflow:{workflow}"],
                        state=Pending(message="submitted by dstack run"),
                    )
                )
                final = (
                    Failed(message="step 'train' exited with code 1")
                    if i % 7 == 6
                    else Completed(name="Done", message="all steps done")
                )
                await retry(lambda: client.set_flow_run_state(fr.id, final, force=True))

        await asyncio.gather(*(one(i) for i in range(n)))


def run_cmd(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-600:]}"
        raise RuntimeError(msg)
    return took, proc.stdout


def rest_costs(url: str) -> dict[str, float]:
    """Time the HTTP part alone: dstack's 200-row paging vs one 1000-row page, and rendering rows."""
    from dstack_prefect.engine import PrefectAPI, list_runs

    def best(func: Any) -> float:
        out = []
        for _ in range(3):
            t0 = time.perf_counter()
            func()
            out.append(time.perf_counter() - t0)
        return min(out)

    flt = {"tags": {"all_": ["dstack"]}}
    with PrefectAPI(url) as api:
        costs = {
            "dstack's paging: 5 x POST /flow_runs/filter limit 200": best(lambda: list(api.flow_runs())),
            f"one POST /flow_runs/filter limit {RUNS}": best(
                lambda: api._call("POST", "/flow_runs/filter", {"flow_runs": flt, "limit": RUNS})
            ),
            "list_runs(all_runs=True) (paging + run_row)": best(lambda: list_runs(api, all_runs=True)),
        }
        page = api._call("POST", "/flow_runs/filter", {"flow_runs": flt, "limit": 200})
        costs["size of one 200-row page, KiB"] = len(json.dumps(page)) / 1024
    return costs


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as name:
        tmp = Path(name)
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "DSTACK_MANAGED_SERVER")}
        env["DSTACK_HOME"] = str(tmp / "home")
        env["COLUMNS"] = "200"
        # The server caps a page at PREFECT_SERVER_API_DEFAULT_LIMIT (200): `prefect flow-run ls
        # --limit 1000` is refused with 422. dstack starts its server without PREFECT_* variables
        # but with PREFECT_HOME under DSTACK_HOME, so the cap is raised through that profile.
        prefect_home = tmp / "home" / "prefect"
        prefect_home.mkdir(parents=True)
        (prefect_home / "profiles.toml").write_text(
            f'active = "bench"\n\n[profiles.bench]\nPREFECT_SERVER_API_DEFAULT_LIMIT = "{max(RUNS, 200)}"\n'
        )
        t0 = time.perf_counter()
        url = start_server(env, REPO)
        print(f"dstack server start (not timed): {time.perf_counter() - t0:.1f} s")
        try:
            # the same client settings dstack gives itself (server.py _configure_client_env)
            os.environ["PREFECT_API_URL"] = url
            os.environ["PREFECT_HOME"] = str(tmp / "home" / "prefect")
            os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
            penv = {**env, "PREFECT_API_URL": url, "PREFECT_HOME": os.environ["PREFECT_HOME"]}

            t0 = time.perf_counter()
            asyncio.run(record_runs(RUNS, sample_plan()))
            print(f"recorded {RUNS} runs on {url} in {time.perf_counter() - t0:.1f} s")

            dstack_cmd = ["dstack", "ps", "-a"]
            prefect_cmd = ["prefect", "flow-run", "ls", "--limit", str(RUNS)]
            _, out = run_cmd([*dstack_cmd, "--json"], env)
            dstack_rows = len(json.loads(out))
            try:
                _, out = run_cmd([*prefect_cmd, "-o", "json"], penv)
            except RuntimeError as exc:
                print(f"prefect flow-run ls --limit {RUNS} failed ({str(exc)[-120:]}); using --limit 200")
                prefect_cmd[-1] = "200"
                _, out = run_cmd([*prefect_cmd, "-o", "json"], penv)
            prefect_rows = len(json.loads(out))
            print(
                f"rows listed: dstack ps -a --json {dstack_rows}, prefect flow-run ls -o json {prefect_rows}"
            )

            times: dict[str, list[float]] = {"dstack ps -a": [], f"prefect flow-run ls --limit {RUNS}": []}
            for _ in range(ROUNDS):  # interleaved, so drift hits both
                times["dstack ps -a"].append(run_cmd(dstack_cmd, env)[0])
                times[f"prefect flow-run ls --limit {RUNS}"].append(run_cmd(prefect_cmd, penv)[0])
            fetch = rest_costs(url)
            floor = min(run_cmd(["dstack", "--help"], env)[0] for _ in range(3))
            pfloor = min(run_cmd(["prefect", "--help"], penv)[0] for _ in range(3))
        finally:
            stop_server(env, REPO)

    print(f"\n{'command':<34}{'best s':>8}{'median s':>10}   rounds")
    for label, vals in times.items():
        print(
            f"{label:<34}{min(vals):>8.2f}{statistics.median(vals):>10.2f}   "
            + " ".join(f"{v:.2f}" for v in vals)
        )
    d, p = times["dstack ps -a"], times[f"prefect flow-run ls --limit {RUNS}"]
    print(f"{'dstack --help / prefect --help':<34}{floor:>8.2f}{pfloor:>10.2f}   (startup floors, best of 3)")
    print("\nwhere dstack ps -a spends it (in-process, best of 3):")
    for label, secs in fetch.items():
        unit = "KiB" if "KiB" in label else "s"
        print(f"  {label:<60}{secs:>6.3f} {unit}")
    print(f"  {'rest: interpreter + imports (dstack --help floor)':<60}{floor:>6.3f} s")
    rest = statistics.median(d) - floor - fetch["dstack's paging: 5 x POST /flow_runs/filter limit 200"]
    print(f"  {'rest: server check, rows, rich table (median - floor - paging)':<60}{rest:>6.3f} s")
    print(
        f"\nratio dstack/prefect: best {min(d) / min(p):.2f}x, "
        f"median {statistics.median(d) / statistics.median(p):.2f}x"
    )
    print(
        f"aim: dstack ps -a under 1.5 s -> {statistics.median(d):.2f} s; within 1.2x -> "
        f"{statistics.median(d) / statistics.median(p):.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
