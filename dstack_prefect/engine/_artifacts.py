"""Moving a step's artifacts: deps in before it runs, its own out after it ends.

Interim implementation inside one run (a run-local folder); the store replaces it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dstack_prefect.graph import Step


class RunArtifacts:
    def __init__(self, run_dir: Path) -> None:
        self.root = run_dir / "artifacts"

    def prepare(self, step: Step, workdir: Path, upstream: list[Step]) -> None:
        for up in upstream:
            src = self.root / up.name
            if src.is_dir():
                shutil.copytree(src, workdir, dirs_exist_ok=True, symlinks=True)

    def save(self, step: Step, workdir: Path) -> dict[str, Any]:
        files: list[dict[str, Any]] = []
        dst_root = self.root / step.name
        for art in step.artifacts:
            src = workdir / step.working_dir / art.path
            rel = Path(step.working_dir, art.path)
            if src.is_dir():
                shutil.copytree(src, dst_root / rel, dirs_exist_ok=True, symlinks=True)
            elif src.is_file():
                (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst_root / rel)
        for p in sorted(dst_root.rglob("*")) if dst_root.exists() else []:
            if p.is_file():
                files.append({"path": p.relative_to(dst_root).as_posix(), "size": p.stat().st_size})
        return {"step": step.name, "files": files}
