"""One run's state inside the flow process: resources, running steps, stop requests.

The scheduler submits a step only when its upstream steps are done and the machine has room
for it (CPUs, memory, GPUs), so independent steps overlap while no step waits holding a slot.

    plan.steps (topological)  ──ready + room──>  task.submit()  ──done──>  free room, next
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._artifacts import repo_identity
from dstack_prefect.engine._cache import History, step_executor
from dstack_prefect.engine._reaper import STEP_MARKER, STEP_NAME_MARKER, marker_groups
from dstack_prefect.engine._shipper import LogShipper
from dstack_prefect.engine._snapshot import hash_files, step_files
from dstack_prefect.engine._trees import remove_tree
from dstack_prefect.errors import ServerError
from dstack_prefect.executors import Executor, Handle
from dstack_prefect.executors.local import Machine, kill_group, matching_gpus
from dstack_prefect.graph import Plan, Step
from dstack_prefect.server import free_port
from dstack_prefect.settings import Settings
from dstack_prefect.storage import ArtifactStore, Manifest


@dataclass
class Slot:
    cpus: int
    memory_mib: int
    gpus: list[str]


@dataclass
class Pool:
    """The machine's free CPUs, memory and GPUs."""

    machine: Machine
    cpus: int = 0
    memory_mib: int = 0
    gpus: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cpus = self.machine.cpus
        self.memory_mib = self.machine.memory_mib
        self.gpus = [g.index for g in self.machine.gpus]

    def take(self, step: Step) -> Slot | None:
        res = step.resources
        cpus = min(max(res.cpu or 1, 1), self.machine.cpus)
        mem = min(res.memory_mib or 0, self.machine.memory_mib)
        want = res.gpu.count if res.gpu else 0
        if cpus > self.cpus or mem > self.memory_mib:
            return None
        gpus: list[str] = []
        if want:
            fit = [g.index for g in matching_gpus(step, self.machine) if g.index in self.gpus]
            if len(fit) < want:
                return None
            gpus = fit[:want]
        self.cpus -= cpus
        self.memory_mib -= mem
        self.gpus = [g for g in self.gpus if g not in gpus]
        return Slot(cpus, mem, gpus)

    def give(self, slot: Slot) -> None:
        self.cpus += slot.cpus
        self.memory_mib += slot.memory_mib
        self.gpus.extend(slot.gpus)


STOPPED_LOG_GRACE = 3.0
"""Seconds a stopped run's queued output lines get to reach the server before the run ends."""


class Runtime:
    """Shared by the flow body and its step tasks (threads of the same process)."""

    def __init__(
        self,
        plan: Plan,
        *,
        flow_run_id: str,
        run_name: str,
        repo_root: Path,
        settings: Settings,
        executors: dict[str, Executor],
        machine: Machine,
        reaper: Any = None,
        options: dict[str, Any] | None = None,
        api_url: str = "",
    ) -> None:
        self.plan = plan
        self.api_url = api_url
        self.flow_run_id = flow_run_id
        self.run_name = run_name
        self.repo_root = repo_root
        self.settings = settings
        self.executors = executors
        self.pool = Pool(machine)
        self.reaper = reaper
        self.run_dir = settings.runs_dir / run_name
        self.code_dir = self.run_dir / "code"
        self.lock = threading.Lock()
        self.handles: dict[str, tuple[Executor, Handle]] = {}
        self.slots: dict[str, Slot] = {}
        self.stop_mode: str | None = None
        self._stopping: dict[str, list[threading.Thread]] = {}
        self.options = options or {}
        self.results: dict[str, Manifest] = {}
        """Each finished (or reused) step's manifest: what its dependents receive."""
        self.store = ArtifactStore(settings.store_url)
        self.repo_id: str = self.options.get("repo_id") or repo_identity(repo_root)
        self.code_hashes: dict[str, str] = {}
        self.history: History | None = None
        self.moving: dict[str, str] = {}
        """Steps moving files now: step -> "Downloading" or "Uploading" (see ``phase``)."""
        self.run_phase = "Running"
        self._renames: collections.deque[str] = collections.deque()
        self._phase_changed = threading.Condition(self.lock)
        self._renamer: threading.Thread | None = None
        self._closing = False
        self.shipper = LogShipper(PrefectAPI(api_url)) if api_url else None
        """Ships the steps' output lines (``engine/_shipper.py``); None without a server URL."""

    def phase(self, step: str, name: str) -> None:
        """Say that ``step`` is Downloading (placing its deps' files, restoring caches), Running,
        or Uploading (storing artifacts and caches): dstack's statuses, shown as the run's state
        name (RUNNING throughout) in the Prefect UI and `dstack ps`: Uploading while any step
        uploads, else Downloading while any downloads, else Running. A thread sends each change in
        order, off the steps' path (a state change costs the server a write); a run being stopped
        keeps its Stopping (Prefect refuses CANCELLING -> RUNNING). Task runs keep Prefect's
        names: their states are recorded from the task engine's events, which a REST rename races."""
        with self.lock:
            if name == "Running":
                self.moving.pop(step, None)
            else:
                self.moving[step] = name
            phases = set(self.moving.values())
            run_phase = next((p for p in ("Uploading", "Downloading") if p in phases), "Running")
            if run_phase == self.run_phase:
                return
            self.run_phase = run_phase
            self._renames.append(run_phase)  # each change, in order: a short Uploading still shows
            if self._renamer is None:
                self._renamer = threading.Thread(target=self._rename_loop, name="dstack-phase", daemon=True)
                self._renamer.start()
            self._phase_changed.notify()

    def _rename_loop(self) -> None:
        with PrefectAPI(self.api_url) as api:
            while True:
                with self.lock:
                    while not self._renames and not self._closing:
                        self._phase_changed.wait()
                    if not self._renames or self.stop_mode:
                        return
                    want = self._renames.popleft()
                with contextlib.suppress(ServerError, OSError):
                    api.rename_running(self.flow_run_id, want)

    def close(self) -> None:
        """Send the renames and output lines still queued, then stop (before the run's final
        state is set: a run that is final has every line on the server)."""
        with self.lock:
            self._closing = True
            self._phase_changed.notify_all()
            renamer = self._renamer
        if self.shipper is not None:
            # a stopped run ends within its grace: output still queued after a few seconds goes
            self.shipper.close(cut_after=STOPPED_LOG_GRACE if self.stop_mode else None)
        if renamer is not None:
            renamer.join(timeout=10)

    def prepare_reuse(self) -> None:
        """Hash the code snapshot; open the repo's reuse history (read per step, by key)."""
        self.code_hashes = hash_files(self.code_dir, step_files(self.code_dir))
        self.history = History(self.store, self.repo_id)

    def mode(self) -> str | None:
        """The stop request now: None, "stop" or "abort" (set from the cancel watcher's thread)."""
        return self.stop_mode

    def forced(self, step: str) -> bool:
        rerun = self.options.get("rerun")
        return rerun == "all" or (isinstance(rerun, list) and step in rerun)

    def executor_for(self, step: Step) -> Executor:
        return self.executors[step_executor(step, str(self.options.get("executor") or "local"))]

    def workdir(self, step: Step) -> Path:
        return self.run_dir / "steps" / step.name

    def step_env(self, step: Step, slot: Slot, ports: list[int], secrets: dict[str, str]) -> dict[str, str]:
        """The variables dstack sets for a step (§2.6 of the old runner), then env, then secrets."""
        env = {
            "PYTHONUNBUFFERED": "1",
            "RUN_NAME": self.run_name,
            "JOB_ID": f"{self.run_name},{step.name},0",
            "JOB_HOSTNAME": socket.gethostname(),
            "HOSTNAME": socket.gethostname(),
            "DSTACK_RUN": self.run_name,
            STEP_NAME_MARKER: step.name,
            STEP_MARKER: self.flow_run_id,
        }
        for i, port in enumerate(ports):
            env[f"PORT_{i}"] = str(port)
            env[f"JOB_PORT_{i}"] = str(port)
        if slot.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
        elif self.pool.machine.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""
        env.update(step.env)
        env.update(secrets)
        return env

    def allocate_ports(self, step: Step) -> list[int]:
        return [p.port if p.port is not None else free_port() for p in step.ports]

    def request_stop(self, mode: str) -> None:
        """Stop every running step: "stop" waits the grace period, "abort" kills at once."""
        with self.lock:
            self.stop_mode = mode
            running = list(self.handles.items())
        grace = 0.0 if mode == "abort" else self.settings.stop_grace
        for step, (ex, h) in running:
            self._stop_step(step, ex, h, grace)

    def _stop_step(self, step: str, executor: Executor, handle: Handle, grace: float) -> None:
        """Stop ``step`` in threads: its executor sends SIGTERM, then SIGKILL after ``grace``. A
        local step's processes that left its group (`setsid`, found by their environment marker)
        get the same at the same moments, so a server started that way can shut down cleanly."""
        left: list[threading.Thread] = []
        if executor.name == "local":  # found before the group's SIGTERM ends the step
            own = int(handle.identifier.partition(":")[2])
            for pgid in marker_groups(self.flow_run_id, step) - {own}:
                left.append(threading.Thread(target=kill_group, args=(pgid, grace), daemon=True))
        with self.lock:  # started and listed at once: the step's end waits for them (``stopped``)
            for t in [threading.Thread(target=executor.stop, args=(handle, grace), daemon=True), *left]:
                t.start()
            self._stopping.setdefault(step, []).extend(left)

    def stopped(self, step: str) -> None:
        """Wait until a stop of ``step`` is through: what left its group has had its grace
        before the step's end kills what is left of it."""
        with self.lock:
            threads = self._stopping.pop(step, [])
        for t in threads:
            t.join()

    def cleanup(self) -> None:
        """Remove the steps' folders and the run's code snapshot (a run that ended needs
        neither: its artifacts are in the store), unless ``keep_workdirs``."""
        if not self.settings.keep_workdirs:
            remove_tree(self.run_dir / "steps")
            remove_tree(self.code_dir)


def host_env() -> dict[str, str]:
    """The environment a local step inherits: the user's, minus the engine's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DSTACK_MANAGED"))}
