"""A chatty step: N output lines to Prefect logs, with dstack and with plain Prefect.

    python bench/logs.py                 # N=20000 lines, 1 repetition, 3 read-backs
    BENCH_LINES=50000 BENCH_REPS=3 BENCH_READS=5 python bench/logs.py

The same work both ways, on one local Prefect server (started under a temp DSTACK_HOME with
`dstack server start`, not timed):

* dstack: a workflow whose one step runs `seq 1 N`; `dstack run chatty --rerun` attached,
  timed from start to exit (the run is final, its lines on the server);
* plain Prefect: a flow that runs `seq 1 N` with subprocess and hands each line to
  `get_run_logger().info`, the way Prefect's docs do shell output; `python flow.py` timed from
  start to exit (Prefect drains its log queue at exit).

Then each run's lines are counted on the server: a line that is not there was lost. Prints
times, lines delivered and the ratio.

Then the dstack run's lines are read back from the server, alternately, BENCH_READS times each
(default 3): `dstack logs NAME` and `prefect flow-run logs FLOW_RUN_ID` (it prints every line too,
and Prefect's own few), each timed from start to exit, its output going to a file whose lines are
counted afterwards. Prints the median times, the lines each printed and the ratio. Nothing is
asserted.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from overhead import start_server, stop_server

from dstack_prefect.engine._api import PrefectAPI

LINES = int(os.environ.get("BENCH_LINES", "20000"))
REPS = int(os.environ.get("BENCH_REPS", "1"))
READS = int(os.environ.get("BENCH_READS", "3"))

FLOW = """
import subprocess, sys
from prefect import flow, get_run_logger

@flow(name="chatty")
def chatty(n: int) -> None:
    log = get_run_logger()
    proc = subprocess.Popen(["seq", "1", str(n)], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        log.info(line.rstrip("\\n"))
    proc.wait()

if __name__ == "__main__":
    chatty(int(sys.argv[1]))
"""


def count_lines(api: PrefectAPI, flow_run_id: str, prefix: str) -> int:
    """The flow run's output lines (numbers, from loggers starting with ``prefix``) on the server."""
    seen = 0
    offset = 0
    while True:
        page = api.call(
            "POST",
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": offset},
        )
        if not page:
            return seen
        seen += sum(1 for r in page if r["name"].startswith(prefix) and r["message"].isdigit())
        offset += len(page)


def latest_flow_run(api: PrefectAPI, name: str) -> str:
    runs = api.call(
        "POST",
        "/flow_runs/filter",
        {"flows": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    return str(runs[0]["id"])


def read_back(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    """``argv`` timed from start to exit, its output going to a file; the lines it printed."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=out, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - t0
        out.seek(0)
        return took, sum(1 for _ in out)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    repo = tmp / "repo"
    (repo / ".dstack").mkdir(parents=True)
    (repo / ".dstack" / "workflows.yaml").write_text(
        f"workflows:\n  - name: chatty\n    provider: bash\n    commands: [seq 1 {LINES}]\n"
    )
    (repo / "flow.py").write_text(FLOW)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["DSTACK_HOME"] = str(tmp / "home")
    url = start_server(env, repo)
    flow_env = {**env, "PREFECT_API_URL": url}
    results: dict[str, list[tuple[float, int]]] = {"dstack run": [], "plain Prefect": []}
    reads: dict[str, list[tuple[float, int]]] = {"dstack logs": [], "prefect flow-run logs": []}
    try:
        with PrefectAPI(url) as api:
            for _ in range(REPS):
                t0 = time.perf_counter()
                subprocess.run(
                    ["dstack", "run", "chatty", "--rerun"], cwd=repo, env=env, check=True, capture_output=True
                )
                took = time.perf_counter() - t0
                flow_run_id = latest_flow_run(api, "dstack-run")
                lines = count_lines(api, flow_run_id, "prefect.task_runs.dstack.out")
                results["dstack run"].append((took, lines))
                fr = api.flow_run(flow_run_id)
                assert fr is not None
                for _ in range(READS):
                    reads["dstack logs"].append(read_back(["dstack", "logs", fr["name"]], repo, env))
                    reads["prefect flow-run logs"].append(
                        read_back(["prefect", "flow-run", "logs", flow_run_id], repo, flow_env)
                    )

                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "flow.py", str(LINES)],
                    cwd=repo,
                    env=flow_env,
                    check=True,
                    capture_output=True,
                )
                took = time.perf_counter() - t0
                lines = count_lines(api, latest_flow_run(api, "chatty"), "prefect.flow_runs")
                results["plain Prefect"].append((took, lines))
    finally:
        stop_server(env, repo)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{LINES} output lines, one step, {REPS} repetition(s); median wall time, lines on the server")
    print(f"{'tool':16}{'median s':>10}{'lines':>10}   runs")
    medians = {}
    for tool, runs in results.items():
        medians[tool] = statistics.median(t for t, _ in runs)
        lines = min(n for _, n in runs)
        shown = " ".join(f"{t:.2f}" for t, _ in runs)
        print(f"{tool:16}{medians[tool]:>10.2f}{lines:>10}   {shown}")
    print(f"ratio dstack / plain Prefect: {medians['dstack run'] / medians['plain Prefect']:.2f}x")
    print()
    print(
        f"reading the dstack run's lines back, {READS * REPS} time(s) each; median wall time, lines printed"
    )
    print(f"{'tool':24}{'median s':>10}{'lines':>10}   runs")
    for tool, runs in reads.items():
        medians[tool] = statistics.median(t for t, _ in runs)
        shown = " ".join(f"{t:.2f}" for t, _ in runs)
        print(f"{tool:24}{medians[tool]:>10.2f}{min(n for _, n in runs):>10}   {shown}")
    ratio = medians["dstack logs"] / medians["prefect flow-run logs"]
    print(f"ratio dstack logs / prefect flow-run logs: {ratio:.2f}x")


if __name__ == "__main__":
    main()
