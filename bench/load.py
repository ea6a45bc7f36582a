"""Time load_workflows on 500 workflows in 50 files, next to plain yaml.safe_load of the same files.

    python bench/load.py

Prints the best of 5 for each and the ratio. Targets: under 0.3 s, within 3x of safe_load.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from dstack_prefect.spec import load_workflows, workflow_files

FILES, PER_FILE, ROUNDS = 50, 10, 5

WORKFLOW = """\
  - name: wf-{f}-{i}
    help: "Trains model {i} of file {f}"
    provider: bash
    python: 3.10
    env:
      - RUN=${{{{ run.name }}}}
      - TOKEN=${{{{ secrets.TOKEN }}}}
    commands:
      - pip install -r requirements.txt
      - python train.py --seed {i} ${{{{ run.args }}}}
    artifacts:
      - path: ./out-{i}
    cache:
      - ~/.cache/pip
    ports: [7860]
    resources:
      memory: 16GB
      gpu:
        name: A100
        count: 1
      interruptible: true
    deps:
      - {dep}
"""


def make_repo(root: Path) -> None:
    folder = root / ".dstack" / "workflows"
    folder.mkdir(parents=True)
    for f in range(FILES):
        items = []
        for i in range(PER_FILE):
            dep = f"wf-{f}-{i - 1}" if i else ":baseline"
            items.append(WORKFLOW.format(f=f, i=i, dep=dep))
        (folder / f"w{f:02}.yaml").write_text("workflows:\n" + "".join(items))


def best(func: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root)
        files = workflow_files(root)
        count = len(load_workflows(root))
        ours = best(lambda: load_workflows(root))
        plain = best(lambda: [yaml.safe_load(p.read_text()) for p in files])
    print(f"{count} workflows in {len(files)} files, best of {ROUNDS}")
    print(f"load_workflows:  {ours * 1000:7.1f} ms")
    print(f"yaml.safe_load:  {plain * 1000:7.1f} ms")
    print(f"ratio:           {ours / plain:7.2f}x")


if __name__ == "__main__":
    main()
