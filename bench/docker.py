"""Per-step overhead of DockerExecutor against `docker run --rm IMAGE true`, in one process.

    python bench/docker.py [-n 10] [--image dstack-prefect/runtime:<version>-py3.11-slim]

Both sides run `true` in the same image with host networking: ours is a bash step (create,
start, stream logs, wait, re-read the log, remove); the baseline is the docker CLI. Prints the
means and the ratio (aim: within 1.3x). Needs the engine and image from .ci/docker-setup.sh.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder is sys.path[0] and "docker" would import this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from dstack_prefect.executors import StepJob  # noqa: E402
from dstack_prefect.executors._docker_image import runtime_tag  # noqa: E402
from dstack_prefect.executors.docker import DockerExecutor  # noqa: E402
from dstack_prefect.graph import Step  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--image", default=runtime_tag(slim=True))
    opts = parser.parse_args()
    step = Step(name="bench", commands=["true"])
    ours: list[float] = []
    cli: list[float] = []
    with DockerExecutor(runtime_image=opts.image) as ex, tempfile.TemporaryDirectory() as wd:
        ex.check(step)  # connects and reads `docker info` once, outside the timings
        for i in range(opts.n + 1):  # the first round of each warms caches and is dropped
            began = time.perf_counter()
            job = StepJob(run_name="bench", step=step, workdir=Path(wd), env={}, on_line=lambda _line: None)
            result = ex.wait(ex.start(job))
            took = time.perf_counter() - began
            assert result.exit_code == 0, result
            if i:
                ours.append(took)
            began = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--network", "host", opts.image, "true"], check=True)
            if i:
                cli.append(time.perf_counter() - began)
    a, b = statistics.mean(ours), statistics.mean(cli)
    for label, times in (("DockerExecutor ", ours), ("docker run --rm", cli)):
        ms = [t * 1000 for t in times]
        print(
            f"{label} mean {statistics.mean(ms):7.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f}, n={opts.n})"
        )
    print(f"ratio {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
