"""A 10-step chain run twice unchanged: dstack's second run (reuse by content hash) next to
`dvc repro` twice on the same stages. Prints both times per tool and the first/second ratio.

    python bench/cache.py                 # DVC_BIN=... to point at dvc (see bench/overhead.py)

Each step sleeps 0.5 s, then writes a file that the next step reads (a real data dependency, an
artifact in dstack, an out/dep in dvc). The second run of an unchanged chain should do no step
work: aim, the second dstack run at least 5x faster than the first. Nothing is asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import find_dvc, timed

STEPS = 10
WORK = "sleep 0.5"


def write_dstack(folder: Path) -> None:
    lines = ["workflows:"]
    for i in range(STEPS):
        cmd = (
            f"{WORK}; mkdir -p out{i}; "
            + (f"cat out{i - 1}/v > out{i}/v; " if i else "")
            + f"echo {i} >> out{i}/v"
        )
        lines += [
            f"  - name: s{i}",
            "    provider: bash",
            f"    commands: ['{cmd}']",
            f"    artifacts: [out{i}]",
        ]
        if i:
            lines.append(f"    deps: [s{i - 1}]")
    (folder / ".dstack").mkdir(parents=True)
    (folder / ".dstack" / "workflows.yaml").write_text("\n".join(lines) + "\n")


def write_dvc(folder: Path) -> None:
    lines = ["stages:"]
    for i in range(STEPS):
        cmd = (
            f"{WORK}; mkdir -p out{i}; "
            + (f"cat out{i - 1}/v > out{i}/v; " if i else "")
            + f"echo {i} >> out{i}/v"
        )
        lines += [f"  s{i}:", f"    cmd: {cmd!r}", f"    outs: [out{i}]"]
        if i:
            lines.append(f"    deps: [out{i - 1}]")
    (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")


def git_init(folder: Path) -> None:
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"],
    ):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)


def bench_dstack(tmp: Path) -> tuple[float, float]:
    repo = tmp / "dstack-repo"
    repo.mkdir()
    write_dstack(repo)
    git_init(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DSTACK_"))}
    env["DSTACK_HOME"] = str(tmp / "home")
    dstack = [sys.executable, "-m", "dstack_prefect"]
    subprocess.run([*dstack, "server", "start"], cwd=repo, env=env, check=True, capture_output=True)
    try:
        first = timed([*dstack, "run", f"s{STEPS - 1}"], repo, env)
        second = timed([*dstack, "run", f"s{STEPS - 1}"], repo, env)
    finally:
        subprocess.run([*dstack, "server", "stop"], cwd=repo, env=env, capture_output=True)
    return first, second


def bench_dvc(tmp: Path, dvc: str) -> tuple[float, float]:
    repo = tmp / "dvc-repo"
    repo.mkdir()
    write_dvc(repo)
    git_init(repo)
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True, capture_output=True)
    first = timed([dvc, "repro", "-q"], repo)
    second = timed([dvc, "repro", "-q"], repo)
    return first, second


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dstack-bench-cache-"))
    try:
        rows = [("dstack run", bench_dstack(tmp))]
        dvc = find_dvc()
        if dvc:
            rows.append(("dvc repro", bench_dvc(tmp, dvc)))
        else:
            print("dvc not found: skipped (see bench/overhead.py for how to install it aside)")
        print(f"{STEPS}-step chain, each step `{WORK}`, run twice unchanged")
        print(f"{'tool':<12} {'first (s)':>10} {'second (s)':>11} {'first/second':>13}")
        for name, (first, second) in rows:
            print(f"{name:<12} {first:>10.2f} {second:>11.2f} {first / second:>12.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
