"""The local executor: each step is `bash` in its own process group on this machine.

A step's commands run as one bash script (`set -e`, one command per line, as old dstack's
`cmd1 && cmd2`). The process group is what stop() signals, so children and grandchildren
(`python train.py &`, `sleep`) go too. The step ends when the script does: whatever it leaves
in its group is killed then (`server &` holding the output kept it open until it exited), and
the output already written is still read, for at most ``DRAIN_AFTER_EXIT`` (a process that left
the group, `setsid`, may hold the output; the engine kills those by their environment). GPUs
are found with nvidia-smi; the engine hands them out via CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from dstack_prefect.errors import ResourcesUnavailableError
from dstack_prefect.executors._base import Executor, Handle, StepJob, StepResult
from dstack_prefect.executors._lines import LineBuffer
from dstack_prefect.executors._ports import check_fixed_ports
from dstack_prefect.graph import Resources, Step


@dataclass(frozen=True)
class Gpu:
    index: str
    name: str
    memory_mib: int


@dataclass(frozen=True)
class Machine:
    """What this machine offers to steps."""

    cpus: int
    memory_mib: int
    gpus: tuple[Gpu, ...]
    gpu_note: str = ""
    """Why no GPU was found, when nvidia-smi is missing, failed or listed none."""

    def describe(self) -> str:
        gpus = ", ".join(f"{g.name} {g.memory_mib} MiB" for g in self.gpus)
        if not gpus:
            gpus = f"no GPU ({self.gpu_note})" if self.gpu_note else "no GPU"
        return f"{self.cpus} CPUs, {self.memory_mib} MiB memory, {gpus}"


NVIDIA_SMI_TIMEOUT = 20.0
"""Seconds nvidia-smi gets to answer (a hung driver makes it hang)."""


def detect_gpus() -> tuple[tuple[Gpu, ...], str]:
    """GPUs as nvidia-smi reports them, and why there are none (nvidia-smi missing, failing, or
    printing no GPU list: a driver to fix, said where a GPU step is refused)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return (), "nvidia-smi not found"
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (), f"nvidia-smi did not answer in {NVIDIA_SMI_TIMEOUT:g} s"
    except OSError as exc:
        return (), f"nvidia-smi could not start: {exc.strerror or exc}"
    said = " ".join((proc.stdout + " " + proc.stderr).split())[:200]
    if proc.returncode != 0:
        return (), f"nvidia-smi failed, exit code {proc.returncode}" + (f": {said}" if said else "")
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[2].isdigit():
            gpus.append(Gpu(index=parts[0], name=parts[1], memory_mib=int(parts[2])))
    if not gpus:
        return (), "nvidia-smi listed no GPU" + (f": {said}" if said else "")
    return tuple(gpus), ""


def detect_machine() -> Machine:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    gpus, note = detect_gpus()
    return Machine(cpus=cpus, memory_mib=memory_mib, gpus=gpus, gpu_note=note)


def matching_gpus(step: Step, machine: Machine) -> list[Gpu]:
    """The machine's GPUs that satisfy the step's GPU name and memory, the smallest first (as old
    dstack took the smallest instance that fits), so the larger cards stay free for steps that
    need them."""
    req = step.resources.gpu
    if req is None:
        return []
    found = list(machine.gpus)
    if req.name:
        found = [g for g in found if req.name.lower() in g.name.lower()]
    if req.memory_mib:
        found = [g for g in found if g.memory_mib >= req.memory_mib]
    return sorted(found, key=lambda g: g.memory_mib)


def check_resources(step: Step, machine: Machine) -> None:
    """Raise ResourcesUnavailableError when ``step`` asks for more than ``machine`` has."""
    res = step.resources
    asked: list[str] = []
    if res.cpu and res.cpu > machine.cpus:
        asked.append(f"{res.cpu} CPUs")
    if res.memory_mib and res.memory_mib > machine.memory_mib:
        asked.append(f"{res.memory_mib} MiB memory")
    if res.gpu and res.gpu.count > 0:
        gpus = matching_gpus(step, machine)
        if len(gpus) < res.gpu.count:
            what = f"{res.gpu.count} GPU{'s' if res.gpu.count > 1 else ''}"
            if res.gpu.name:
                what += f" named {res.gpu.name}"
            if res.gpu.memory_mib:
                what += f" with {res.gpu.memory_mib} MiB each"
            asked.append(what)
    if asked:
        msg = f"step '{step.name}' asks for {', '.join(asked)}; this machine has {machine.describe()}"
        raise ResourcesUnavailableError(
            msg,
            hint="lower the step's resources (or --cpu, --memory, --gpu, --gpu-name, --gpu-memory), "
            "or run it on a machine that has them: steps run on the machine that runs `dstack run`",
        )


def check_gpus(step: Step, machine: Machine) -> None:
    """check_resources for the step's GPUs alone: the engine hands every step, a container's
    too, GPUs from ``machine``'s list, so a step asking more than it lists would wait forever."""
    res = step.resources
    if res.gpu is not None:
        check_resources(step.model_copy(update={"resources": Resources(gpu=res.gpu)}), machine)


def bash_script(step: Step) -> str:
    """The script bash runs: setup, then commands, stopping at the first failure. `set -e`
    shares the first line, so the line bash names in an error (`line 2: conda: command not
    found`) is that line of setup + commands."""
    return "set -e; " + "\n".join([*step.setup, *step.commands]) + "\n"


class LocalExecutor(Executor):
    """Runs steps as bash process groups on this machine."""

    name = "local"

    def __init__(self, machine: Machine | None = None) -> None:
        self._machine = machine
        self._lock = threading.Lock()

    @property
    def machine(self) -> Machine:
        with self._lock:
            if self._machine is None:
                self._machine = detect_machine()
            return self._machine

    def check(self, step: Step) -> None:
        check_resources(step, self.machine)
        check_fixed_ports(step)

    def start(self, job: StepJob) -> Handle:
        cwd = (job.workdir / job.step.working_dir).resolve()
        cwd.mkdir(parents=True, exist_ok=True)
        marker = job.labels.get("dstack.marker", f"dstack:{job.run_name}:{job.step.name}")
        proc = subprocess.Popen(
            ["bash", "-c", bash_script(job.step), marker],
            cwd=cwd,
            env=job.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return Handle(identifier=f"local:{proc.pid}", native=_Running(proc, job))

    def wait(self, handle: Handle) -> StepResult:
        running: _Running = handle.native  # type: ignore[assignment]
        proc = running.proc
        assert proc.stdout is not None
        lines = LineBuffer(running.job.on_line)
        try:
            _read_until_the_script_ends(running, lines)
        finally:
            proc.stdout.close()  # a process still writing (it left the group) gets EPIPE
            lines.close()
        code = proc.wait()
        # Whatever the script left running in its group (`server &`) ends with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return StepResult(exit_code=code, stopped=running.stopped)

    def stop(self, handle: Handle, grace: float = 10.0) -> None:
        running: _Running = handle.native  # type: ignore[assignment]
        running.kill_at = time.monotonic() + grace  # before `stopped`: wait() reads both
        running.stopped = True
        kill_group(running.proc.pid, grace)


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    job: StepJob
    stopped: bool = False
    kill_at: float = 0.0
    """When a stop kills what is left of the group (monotonic clock)."""


DRAIN_AFTER_EXIT = 1.0
"""Seconds the output is still read after the script exits and its group is killed: what is in
the pipe comes at once; only a process that left the group (``setsid``) can hold it longer."""


def _read_until_the_script_ends(running: _Running, lines: LineBuffer) -> None:
    """Feed the step's output to ``lines`` until nothing holds it, or, once bash has exited and
    what it left in its group is killed, until the pipe is drained or ``DRAIN_AFTER_EXIT`` is
    up. A stopped step's group keeps its grace: reading goes on until the stop kills it."""
    proc = running.proc
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    exited = _exit_fd(proc.pid)
    poller = select.poll()  # no FD_SETSIZE limit: a busy flow process holds many descriptors
    poller.register(out, select.POLLIN)
    if exited is not None:
        poller.register(exited, select.POLLIN)
    until: float | None = None  # set when bash has exited
    try:
        while True:
            if until is None:
                timeout = None if exited is not None else 100  # ms; polls for the exit without a pidfd
            else:
                timeout = max(0, int((until - time.monotonic()) * 1000))
            ready = {fd for fd, _ in poller.poll(timeout)}
            if until is None and (exited in ready if exited is not None else proc.poll() is not None):
                if exited is not None:
                    poller.unregister(exited)
                if not running.stopped:  # unreaped yet: its pid still names the group
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                until = max(time.monotonic(), running.kill_at) + DRAIN_AFTER_EXIT
            if until is not None and time.monotonic() >= until:
                _drain(out, lines)
                return
            if out in ready:
                chunk = os.read(out, 65536)
                if not chunk:
                    return
                lines.feed(chunk)
    finally:
        if exited is not None:
            os.close(exited)


def _drain(fd: int, lines: LineBuffer, limit: int = 1 << 20) -> None:
    """Feed what the pipe ``fd`` holds now (at most ``limit`` bytes: a pipe holds 64 KiB to
    1 MiB), without waiting for more."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    taken = 0
    while taken < limit and poller.poll(0):
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        taken += len(chunk)
        lines.feed(chunk)


def _exit_fd(pid: int) -> int | None:
    """A descriptor that turns readable when process ``pid`` exits (Linux's pidfd); None where
    there is none (the caller polls)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def group_alive(pgid: int) -> bool:
    """True while any process (a not-yet-reaped one included) is in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds (at once if 0)."""
    if grace > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
