"""Run one 30-step DAG with make -j2, dvc repro and dstack run; print wall times and ratios.

    python bench/overhead.py            # 3 repetitions each, median
    DVC_BIN=/path/to/dvc python bench/overhead.py
    BENCH_REPS=5 python bench/overhead.py

The DAG: 12 levels of width 1 to 4 (30 steps), each step `sleep 0.2`, every step depending on
one or two steps of the level before; the last level is one step, so running it runs all 30.
The same DAG is written three ways in a temp dir:

* a Makefile (marker files as targets), run with `make -j2`;
* a dvc.yaml (upstream markers as deps, own marker as out), `dvc repro` in a fresh git+dvc repo
  each repetition (dvc runs stages one at a time). dvc is not a dependency of this project:
  install it in a separate venv (`python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip
  install dvc`); the script takes DVC_BIN, else `dvc` on PATH, else /tmp/dvc-venv/bin/dvc;
* .dstack/workflows.yaml with 30 workflows linked by `deps: [workflow: X]`; `dstack run <last>`
  --rerun (attached) runs the whole DAG each time (without it, later repetitions would reuse every
  step: see bench/cache.py for that). A step without resources takes one CPU slot, so on a 2-CPU machine it
  compares with make -j2. The server is started first (`dstack server start` under a temp
  DSTACK_HOME, PREFECT_API_URL unset, not timed); then each `dstack run` is timed.

For dstack it also prints where the time goes, per repetition: CLI start to the run table
("submitted"), then the flow run's and task runs' start/end times read back from the Prefect
REST API. Only figures are printed; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

WIDTHS = [1, 2, 3, 4, 4, 3, 2, 1, 2, 3, 4, 1]  # 30 steps in 12 levels
SLEEP = 0.2
JOBS = 2
REPS = int(os.environ.get("BENCH_REPS", "3"))


# the DAG ----------------------------------------------------------------------------------


def dag() -> list[tuple[str, list[str]]]:
    """[(step, [deps])] in topological order. Every step of a level feeds the next level."""
    assert sum(WIDTHS) == 30 and WIDTHS[-1] == 1
    steps: list[tuple[str, list[str]]] = []
    prev: list[str] = []
    n = 0
    for width in WIDTHS:
        cur = [f"s{n + j:02d}" for j in range(width)]
        n += width
        for j, name in enumerate(cur):
            deps = {prev[j % len(prev)]} if prev else set()
            deps |= {p for i, p in enumerate(prev) if i % width == j}  # covers every upstream
            steps.append((name, sorted(deps)))
        prev = cur
    return steps


def critical_bound() -> float:
    """Lower bound with JOBS slots if levels ran one after another: sum of ceil(width/JOBS) sleeps."""
    return sum(-(-w // JOBS) for w in WIDTHS) * SLEEP


def write_make(folder: Path) -> None:
    lines = [".PHONY: all", f"all: {dag()[-1][0]}", ""]
    for name, deps in dag():
        lines += [f"{name}: {' '.join(deps)}", f"\tsleep {SLEEP} && touch {name}", ""]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Makefile").write_text("\n".join(lines))


def write_dvc(folder: Path) -> None:
    lines = ["stages:"]
    for name, deps in dag():
        lines.append(f"  {name}:")
        lines.append(f"    cmd: sleep {SLEEP} && touch {name}")
        if deps:
            lines.append("    deps:")
            lines += [f"      - {d}" for d in deps]
        lines.append("    outs:")
        lines.append(f"      - {name}:")
        lines.append("          cache: false")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")


def write_dstack(folder: Path) -> None:
    lines = ["workflows:"]
    for name, deps in dag():
        lines += [f"  - name: {name}", "    provider: bash", "    commands:", f"      - sleep {SLEEP}"]
        if deps:
            lines.append("    deps:")
            lines += [f"      - workflow: {d}" for d in deps]
    (folder / ".dstack").mkdir(parents=True, exist_ok=True)
    (folder / ".dstack" / "workflows.yaml").write_text("\n".join(lines) + "\n")


# helpers ----------------------------------------------------------------------------------


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-800:]
        msg = f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"
        raise RuntimeError(msg)
    return took


def find_dvc() -> str | None:
    for cand in (os.environ.get("DVC_BIN"), shutil.which("dvc"), "/tmp/dvc-venv/bin/dvc"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def post(url: str, body: dict) -> list[dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# the three tools --------------------------------------------------------------------------


def bench_make(tmp: Path) -> list[float]:
    folder = tmp / "make"
    write_make(folder)
    times = []
    for _ in range(REPS):
        for name, _deps in dag():
            (folder / name).unlink(missing_ok=True)
        times.append(timed(["make", f"-j{JOBS}", "-s"], folder))
    return times


def bench_dvc(tmp: Path, dvc: str) -> list[float]:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    times = []
    for rep in range(REPS):
        folder = tmp / f"dvc-{rep}"
        write_dvc(folder)
        subprocess.run(["git", "init", "-q"], cwd=folder, check=True, env=env)
        subprocess.run([dvc, "init", "-q"], cwd=folder, check=True, env=env)
        subprocess.run([dvc, "config", "core.autostage", "false"], cwd=folder, check=True, env=env)
        times.append(timed([dvc, "repro", "-q"], folder, env))
    return times


def start_server(env: dict[str, str], cwd: Path) -> str:
    """`dstack server start` in ``env`` (its DSTACK_HOME); the server's API URL."""
    subprocess.run(["dstack", "server", "start"], cwd=cwd, env=env, check=True, capture_output=True)
    status = subprocess.run(
        ["dstack", "server", "status", "--json"], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    url: str = json.loads(status.stdout)["url"]
    return url


def stop_server(env: dict[str, str], cwd: Path) -> None:
    subprocess.run(["dstack", "server", "stop"], cwd=cwd, env=env, check=False, capture_output=True)


class Dstack:
    def __init__(self, tmp: Path) -> None:
        self.repo = tmp / "dstack"
        write_dstack(self.repo)
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "DSTACK_MANAGED_SERVER")
        }
        self.env["DSTACK_HOME"] = str(tmp / "dstack-home")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["COLUMNS"] = "200"
        t0 = time.perf_counter()
        self.url = start_server(self.env, self.repo)
        self.server_start = time.perf_counter() - t0  # the status call is ~0.3 s of it

    def stop(self) -> None:
        stop_server(self.env, self.repo)

    def cli_floor(self) -> float:
        """`dstack --help`: the interpreter plus the CLI's imports, no server work."""
        return min(timed(["dstack", "--help"], self.repo, self.env) for _ in range(3))

    def run_once(self, target: str) -> dict[str, float]:
        """One attached `dstack run`; wall time plus a breakdown (seconds, relative to CLI start)."""
        t0 = time.time()
        proc = subprocess.Popen(
            ["dstack", "run", target, "--rerun"],  # every step runs: execution, not reuse
            cwd=self.repo,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        submitted = None
        name = None
        out = []
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            words = line.split()
            if submitted is None and len(words) >= 2 and words[1] == target and words[0] != "RUN":
                submitted = time.time()
                name = words[0]
        code = proc.wait()
        t_end = time.time()
        if code != 0 or name is None:
            msg = f"dstack run {target} exited {code}:\n{''.join(out[-20:])}"
            raise RuntimeError(msg)
        fr = post(f"{self.url}/flow_runs/filter", {"flow_runs": {"name": {"any_": [name]}}, "limit": 1})[0]
        trs = post(
            f"{self.url}/task_runs/filter",
            {"flow_runs": {"id": {"any_": [fr["id"]]}}, "limit": 200},
        )
        starts = [ts(t["start_time"]) for t in trs if t.get("start_time")]
        ends = [ts(t["end_time"]) for t in trs if t.get("end_time")]
        durations = [t.get("total_run_time") or 0.0 for t in trs]
        created, f_start, f_end = ts(fr["created"]), ts(fr["start_time"]), ts(fr["end_time"])
        return {
            "wall": t_end - t0,
            "cli_to_submitted": (submitted or t_end) - t0,
            "cli_to_created": created - t0,
            "created_to_flow_start": f_start - created,
            "flow_start_to_first_step": min(starts) - f_start,
            "steps_span": max(ends) - min(starts),
            "last_step_to_flow_end": f_end - max(ends),
            "flow_end_to_cli_exit": t_end - f_end,
            "flow_duration": f_end - f_start,
            "task_runs": float(len(trs)),
            "step_run_time_sum": float(sum(durations)),
        }


def show_table(rows: list[tuple[str, list[float] | None]], make_med: float) -> None:
    print(f"\n{'tool':<14}{'median s':>10}{'min s':>9}{'max s':>9}{'x make':>9}   runs")
    for tool, times in rows:
        if times is None:
            print(f"{tool:<14}{'skipped':>10}")
            continue
        med = statistics.median(times)
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"{tool:<14}{med:>10.2f}{min(times):>9.2f}{max(times):>9.2f}{med / make_med:>9.2f}   {runs}")


BREAKDOWN = [
    ("cli_to_submitted", "CLI start -> run table printed ('submitted')"),
    ("cli_to_created", "CLI start -> flow run created (server 'created')"),
    ("created_to_flow_start", "flow run created -> flow Running (supervisor start)"),
    ("flow_start_to_first_step", "flow Running -> first step started"),
    ("steps_span", "first step start -> last step end"),
    ("last_step_to_flow_end", "last step end -> flow final state"),
    ("flow_end_to_cli_exit", "flow final state -> CLI exit (attach tail)"),
    ("flow_duration", "flow Running -> final (Prefect start/end)"),
    ("step_run_time_sum", f"sum of task run times (ideal {30 * SLEEP:.1f})"),
    ("task_runs", "task runs recorded"),
]


def main() -> None:
    print(
        f"DAG: {len(dag())} steps, widths {WIDTHS}, each `sleep {SLEEP}`; {JOBS} slots; "
        f"level-by-level bound {critical_bound():.2f} s; {REPS} repetitions; {os.cpu_count()} CPUs"
    )
    results: list[tuple[str, list[float] | None]] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        tmp = Path(name)
        make_times = bench_make(tmp)
        results.append((f"make -j{JOBS}", make_times))

        dvc = find_dvc()
        if dvc is None:
            print("dvc not found: skipped (set DVC_BIN, or pip install dvc in /tmp/dvc-venv)")
            results.append(("dvc repro", None))
        else:
            version = subprocess.run(
                [dvc, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            print(f"dvc {version} at {dvc}")
            results.append(("dvc repro", bench_dvc(tmp, dvc)))

        ds = Dstack(tmp)
        try:
            print(f"dstack server start (not timed in the table): {ds.server_start:.1f} s, {ds.url}")
            floor = ds.cli_floor()
            last = dag()[-1][0]
            breakdowns = [ds.run_once(last) for _ in range(REPS)]
        finally:
            ds.stop()
        results.append((f"dstack run {last}", [b["wall"] for b in breakdowns]))

    make_med = statistics.median(make_times)
    show_table(results, make_med)

    print(
        f"\ndstack breakdown, seconds (median of {REPS}; per run in brackets); "
        f"`dstack --help` floor {floor:.2f} s"
    )
    for key, label in BREAKDOWN:
        vals = [b[key] for b in breakdowns]
        per = " ".join(f"{v:.2f}" for v in vals)
        print(f"  {label:<54}{statistics.median(vals):>7.2f}   [{per}]")
    med = {k: statistics.median(b[k] for b in breakdowns) for k in breakdowns[0]}
    outside = med["wall"] - med["steps_span"]
    print(
        f"  => outside the steps: {outside:.2f} s of {med['wall']:.2f} s; steps span vs make wall: "
        f"{med['steps_span'] / make_med:.2f}x"
    )
    dvc_times = results[1][1]
    ds_med = med["wall"]
    print(
        f"\naim: dstack within 1.5x of make -> {ds_med / make_med:.2f}x"
        + (
            f"; faster than dvc repro -> dstack/dvc {ds_med / statistics.median(dvc_times):.2f}x"
            if dvc_times
            else ""
        )
    )


if __name__ == "__main__":
    sys.exit(main())
