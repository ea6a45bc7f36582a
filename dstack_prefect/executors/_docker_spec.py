"""What a step's container is, before any engine is asked: its image, command, environment,
mounts, resources, ports and labels (``container_kwargs`` is pure and unit-tested without an
engine). :mod:`dstack_prefect.executors.docker` runs it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from dstack_prefect.executors._base import StepJob
from dstack_prefect.executors._docker_image import (
    BASE_IMAGE,
    DEFAULT_PYTHON,
    default_base,
    needs_slim,
    runtime_tag,
)
from dstack_prefect.executors._docker_owner import WORKFLOW_DIR
from dstack_prefect.executors.local import bash_script
from dstack_prefect.graph import Step

RUN_LABEL = "dstack.run"
STEP_LABEL = "dstack.step"
HOME_LABEL = "dstack.home"
"""The :func:`home_id` of the dstack home whose run started the container."""
FLOW_RUN_LABEL = "dstack.flow-run-id"
"""The Prefect flow run id of the container's run (set by the engine through ``StepJob.labels``)."""
PYTHON_LABEL = "dstack.python"
"""The runtime image's Python major.minor (docker/Dockerfile); a step asking for another is refused."""
RUNTIME_IMAGE_ENV = "DSTACK_RUNTIME_IMAGE"
CUDA_RUNTIME_IMAGE_ENV = "DSTACK_CUDA_RUNTIME_IMAGE"

_HOST_ONLY_ENV = frozenset(
    {"PATH", "HOME", "PWD", "OLDPWD", "SHELL", "SHLVL", "TMPDIR", "HOSTNAME", "_", "VIRTUAL_ENV", "USER"}
)
"""Host variables that would break a container (its PATH, HOME...) if the engine passed them."""


def default_runtime_image(python: str | None = None, *, cuda: bool = False) -> str:
    """$DSTACK_RUNTIME_IMAGE (or $DSTACK_CUDA_RUNTIME_IMAGE for GPU steps), else the built tag."""
    explicit = os.environ.get(CUDA_RUNTIME_IMAGE_ENV if cuda else RUNTIME_IMAGE_ENV)
    return explicit or runtime_tag(python or DEFAULT_PYTHON, cuda=cuda)


def home_id(home: Path | str | None = None) -> str:
    """A short stable id of the dstack home ``home`` (default: this process's, DSTACK_HOME).

    The hash of the home's real path: the same for every process of one home (the CLI, the
    supervisor, a Prefect worker) and across restarts of its server, different for other homes.
    """
    if home is None:
        from dstack_prefect.settings import get_settings  # noqa: PLC0415

        home = get_settings().home
    path = os.path.realpath(os.path.expanduser(os.fspath(home)))
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def step_image(step: Step, runtime_image: str | None = None, cuda_runtime_image: str | None = None) -> str:
    """The image ``step`` runs in."""
    if step.provider == "docker":
        if not step.image:
            msg = f"step '{step.name}' has provider docker but no image"
            raise ValueError(msg)
        return step.image
    if _wants_gpu(step):
        return cuda_runtime_image or default_runtime_image(step.python, cuda=True)
    return runtime_image or default_runtime_image(step.python)


def runtime_image_hint(step: Step, image: str) -> str:
    """How to get the missing runtime ``image`` of ``step``: the build that makes that very tag."""
    python, cuda, build = _build_command(step)
    if image not in (runtime_tag(python, cuda=cuda), runtime_tag(python, cuda=cuda, slim=True)):
        env = CUDA_RUNTIME_IMAGE_ENV if cuda else RUNTIME_IMAGE_ENV
        return f"build or tag {image} on this engine, or unset {env} and run `{build}`"
    base = default_base(python, cuda=cuda)
    return (
        f"build it: `{build}` (its base {base} needs registry access; without one pass "
        f"--base IMAGE, an image here with Python {python}"
        + (f", e.g. {BASE_IMAGE} from .ci/docker-setup.sh)" if python == DEFAULT_PYTHON and not cuda else ")")
    )


def _build_command(step: Step) -> tuple[str, bool, str]:
    """``(python, cuda, "dstack image build ...")`` of the runtime image ``step`` runs in by
    default (``--slim`` for a Python older than a full image allows)."""
    python, cuda = step.python or DEFAULT_PYTHON, _wants_gpu(step)
    build = "dstack image build" + (f" --python {python}" if python != DEFAULT_PYTHON else "")
    return python, cuda, build + (" --cuda" if cuda else "") + (" --slim" if needs_slim(python) else "")


def step_command(step: Step) -> tuple[list[str] | None, list[str] | None]:
    """``(entrypoint, command)`` for the container; None keeps the image's own.

    docker provider: the user's entrypoint with the commands joined by `` && `` as its argument
    (as old dstack's runner); with commands and no entrypoint, ``/bin/sh -c``; with neither, the
    image's ENTRYPOINT and CMD. Other providers: ``bash -c <script>`` in the runtime image.
    """
    if step.provider == "docker":
        commands = [*step.setup, *step.commands]
        joined = [" && ".join(commands)] if commands else None
        if step.entrypoint:
            return list(step.entrypoint), joined
        if joined:
            return ["/bin/sh", "-c"], joined
        return None, None
    return ["bash", "-c", bash_script(step), f"dstack:{step.name}"], []


def container_kwargs(
    job: StepJob,
    *,
    image: str | None = None,
    user: tuple[int, int] | None = None,
    network_mode: str = "host",
    home: str | None = None,
    image_home: str | None = None,
) -> dict[str, Any]:
    """The exact keyword arguments for ``client.containers.create`` for ``job`` (no engine needed).

    ``image`` defaults to :func:`step_image`; ``user`` to this process's uid:gid (runtime-image
    steps run as it, so what they write in the workdir stays the user's; docker-provider steps
    run as their image's user). ``network_mode`` other than host publishes ``job.ports`` on
    127.0.0.1, each at its "APP:LOCAL" local port, else under the same number. ``home`` is the
    ``dstack.home`` label, default :func:`home_id` of this process's home. ``image_home`` is the
    HOME Docker gives a docker-provider step without ``home_dir`` (:func:`._docker_owner.image_home`),
    where its ``~`` mounts go; default ``/root``.
    """
    step = job.step
    uid, gid = user if user is not None else (os.getuid(), os.getgid())
    entrypoint, command = step_command(step)
    env = {k: v for k, v in job.env.items() if k not in _HOST_ONLY_ENV}
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    if job.gpus:
        env.pop("CUDA_VISIBLE_DEVICES", None)  # host indices; the container renumbers from 0
    labels = _labels(job, step.name, home or home_id())
    kwargs: dict[str, Any] = {
        "image": image or step_image(step),
        "entrypoint": entrypoint,
        "command": command,
        "environment": env,
        "working_dir": _container_path(step.working_dir),
        "volumes": {str(job.workdir.resolve()): {"bind": WORKFLOW_DIR, "mode": "rw"}},
        "labels": labels,
        "init": True,  # tini as PID 1; TINI_KILL_PROCESS_GROUP: a stop reaches bash's children too
        "network_mode": network_mode,
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    if step.provider == "docker":
        if step.home_dir or image_home:
            env["HOME"] = step.home_dir or str(image_home)
    else:
        kwargs["user"] = f"{uid}:{gid}"
        env["HOME"] = "/root" if uid == 0 else "/tmp/home"
    res = step.resources
    if res.memory_mib:
        kwargs["mem_limit"] = f"{res.memory_mib}m"
        kwargs["memswap_limit"] = f"{res.memory_mib}m"  # the same: no swap
    if res.cpu:
        kwargs["nano_cpus"] = int(res.cpu * 1e9)
    if res.shm_size_mib:
        kwargs["shm_size"] = f"{res.shm_size_mib}m"
    if _wants_gpu(step):
        request: dict[str, Any] = {"driver": "nvidia", "capabilities": [["gpu"]]}
        if job.gpus:
            request["device_ids"] = list(job.gpus)
        else:
            assert res.gpu is not None
            request["count"] = res.gpu.count
        kwargs["device_requests"] = [request]
    for inside, host in job.mounts.items():
        home = env.get("HOME") or "/root"
        target = home.rstrip("/") + inside[1:] if inside.startswith("~") else inside
        kwargs["volumes"][str(host.resolve())] = {"bind": target, "mode": "rw"}
    if network_mode != "host" and job.ports:
        local = [spec.local_port for spec in step.ports] + [None] * len(job.ports)
        kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1", local[i] or p) for i, p in enumerate(job.ports)}
    return kwargs


def _labels(job: StepJob, step_name: str, home: str) -> dict[str, str]:
    return {**job.labels, RUN_LABEL: job.run_name, STEP_LABEL: step_name, HOME_LABEL: home}


def _wants_gpu(step: Step) -> bool:
    return step.resources.gpu is not None and step.resources.gpu.count > 0


def _container_path(working_dir: str) -> str:
    rel = working_dir.strip("/")
    return WORKFLOW_DIR if rel in ("", ".") else f"{WORKFLOW_DIR}/{rel}"
