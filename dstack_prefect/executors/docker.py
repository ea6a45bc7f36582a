"""The Docker executor: each step is one container on the local Docker engine (docker-py).

    provider docker            the step's ``image``; ``entrypoint``, else ``/bin/sh -c "c1 && c2"``
    bash, code, lab, notebook  the runtime image; ``bash -c`` of the same script the local
                               executor runs (``set -e``, setup, commands), as the host's uid:gid

Every container gets the step's folder at /workflow (working dir /workflow/<working_dir>), the
step's environment, host networking (so PORT_i are host ports), memory and CPU limits without
swap, ``init`` (tini as PID 1, so a stop takes effect at once), device requests for GPUs, and the
labels ``dstack.run`` / ``dstack.step`` / ``dstack.home`` (plus the job's, e.g. the engine's
``dstack.flow-run-id``) by which :func:`list_step_containers` and :func:`cleanup_containers` find
leftovers. The container is removed when the step ends.

Files stay the host user's. A docker-provider step runs as its image's USER: a throwaway root
container of that image ``chown -R``s the step folder and cache folders to a non-root USER
before the step and back to the host uid:gid after. A step running as a non-root uid gets the
folders between HOME and its ``~`` mount points made as its own in the created container, and a
``home_dir`` its image lacks is made as the step user's (root's for a root image).
Without ``home_dir``, a docker-provider step's ``~`` is the HOME Docker gives its image's USER
(the image's ENV HOME, else its /etc/passwd entry), not /root.

One Docker engine serves many dstack homes (other DSTACK_HOMEs, users, CI jobs), each with its
own Prefect server: ``dstack.home`` (:func:`home_id`) says which home started a container, and
cleanup only ever judges its own home's containers.

    with DockerExecutor(runtime_image="dstack-prefect/runtime:0.1.0-py3.11") as ex:
        ex.check(step)                 # pulls a missing docker-provider image
        handle = ex.start(job)         # pulls it here instead when the step has registry_auth,
                                       # saying so on the step's log first
        result = ex.wait(handle)       # lines to job.on_line; removes the container

Every docker-py call runs inside :func:`~dstack_prefect.executors._docker_errors.docker_errors`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dstack_prefect.errors import ExecutionError, ExecutorUnavailableError
from dstack_prefect.executors._base import Executor, Handle, StepJob, StepResult
from dstack_prefect.executors._docker_errors import (
    ENGINE_HINT,
    IMAGE_HINT,
    NVIDIA_HINT,
    REGISTRY_IMAGE_HINT,
    docker_errors,
    pull_refusal,
)
from dstack_prefect.executors._docker_image import (
    DEFAULT_PYTHON,
    needs_slim,
    runtime_tag,
)
from dstack_prefect.executors._docker_owner import (
    chown_back,
    hand_over,
    image_config,
    image_has_path,
    image_user,
    own_folders_to_mounts,
)
from dstack_prefect.executors._docker_owner import image_home as docker_image_home
from dstack_prefect.executors._docker_spec import (
    CUDA_RUNTIME_IMAGE_ENV,
    FLOW_RUN_LABEL,
    HOME_LABEL,
    PYTHON_LABEL,
    RUN_LABEL,
    RUNTIME_IMAGE_ENV,
    _build_command,
    _labels,
    _wants_gpu,
    container_kwargs,
    default_runtime_image,
    home_id,
    runtime_image_hint,
    step_command,
    step_image,
)
from dstack_prefect.executors._lines import LineBuffer, stream_lines
from dstack_prefect.executors._ports import check_fixed_ports
from dstack_prefect.executors.local import Machine, check_resources
from dstack_prefect.graph import Step
from dstack_prefect.spec._fields import did_you_mean


@dataclass
class _Running:
    container: Any
    job: StepJob
    oom_limit: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    handed: bool = False
    """The workdir was handed to the image's non-root USER: it goes back to the host user."""
    stopped: bool = False
    waiting: bool = False
    done: bool = False


class DockerExecutor(Executor):
    """Runs each step in its own container on the local Docker engine."""

    name = "docker"

    def __init__(
        self,
        *,
        runtime_image: str | None = None,
        cuda_runtime_image: str | None = None,
        network_mode: str = "host",
        user: tuple[int, int] | None = None,
        client: Any = None,
        home: str | None = None,
        on_pull: Callable[[str, str], None] | None = None,
        pull: bool = True,
    ) -> None:
        """``runtime_image``: for bash/code/lab/notebook steps; default $DSTACK_RUNTIME_IMAGE, else
        ``dstack-prefect/runtime:<version>-py<step python or 3.11>``. ``cuda_runtime_image``: the
        same for GPU steps. ``user``: the host uid:gid files in the workdir must end up owned by
        (default this process's). ``client``: a docker-py client (default ``docker.from_env()``).
        ``home``: the containers' ``dstack.home`` label (default :func:`home_id` of this home).
        ``on_pull(image, step_name)``: told before an image is pulled (a pull may take minutes).
        ``pull``: False leaves a missing docker-provider image to :meth:`start` (``dstack plan``'s
        check, which changes nothing).
        """
        self.runtime_image = runtime_image
        self.cuda_runtime_image = cuda_runtime_image
        self.network_mode = network_mode
        self.host_network = network_mode == "host"
        self.user = user if user is not None else (os.getuid(), os.getgid())
        self.home = home or home_id()
        self.on_pull = on_pull
        self.pull = pull
        self._client = client
        self._own_client = client is None
        self._lock = threading.Lock()
        self._info: dict[str, Any] | None = None
        self._pull_locks: dict[str, threading.Lock] = {}

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = docker_client()
            return self._client

    def info(self) -> dict[str, Any]:
        """``docker info`` of the engine, read once."""
        if self._info is None:
            with docker_errors("reading the Docker engine's info"):
                self._info = dict(self.client.info())
        return self._info

    def check(self, step: Step) -> None:
        """Fail before running: no engine, missing runtime image, NVIDIA runtime, or too many CPUs
        / too much memory. A docker-provider image the engine lacks is pulled here, so an image
        no registry has fails the run before any step runs; one with ``registry_auth`` (whose
        secrets are resolved only when the step starts) is left to :meth:`start`."""
        try:
            info = self.info()
        except ExecutorUnavailableError as exc:
            if exc.hint != ENGINE_HINT or step.provider == "docker":
                raise
            # Only --docker (or `executor: docker`) put this step in a container.
            hint = f"{ENGINE_HINT}; or run without --docker"
            raise ExecutorUnavailableError(exc.message, hint=hint) from exc
        engine = Machine(
            cpus=int(info.get("NCPU") or 0) or 10**6,
            memory_mib=int(info.get("MemTotal") or 0) // 2**20 or 10**12,
            gpus=(),
        )
        # GPUs are the NVIDIA runtime's business (below), CPUs and memory the engine's.
        check_resources(
            step.model_copy(update={"resources": step.resources.model_copy(update={"gpu": None})}), engine
        )
        check_fixed_ports(step, host_network=self.host_network)
        if step.provider == "docker" and step.home_dir and not step.home_dir.startswith("/"):
            msg = f"home_dir of step '{step.name}' must be an absolute path, not '{step.home_dir}'"
            raise ExecutionError(
                msg, hint="give the home folder's path in the image, e.g. home_dir: /home/app"
            )
        if _wants_gpu(step) and not has_nvidia_runtime(info):
            runtimes = ", ".join(sorted(info.get("Runtimes") or {})) or "none"
            msg = (
                f"step '{step.name}' asks for a GPU but the Docker engine has no NVIDIA runtime "
                f"(runtimes: {runtimes}; no CDI nvidia.com/gpu devices)"
            )
            raise ExecutorUnavailableError(msg, hint=NVIDIA_HINT)
        if step.provider == "docker":
            self._check_image_name(step)
            if step.registry_auth is None and self.pull:
                self._ensure_image(self._image(step), step)
        else:
            image = self._image(step)
            if not self._has_image(image):
                msg = f"runtime image {image} for step '{step.name}' is not on the Docker engine"
                raise ExecutorUnavailableError(msg, hint=runtime_image_hint(step, image))
            has = (image_config(self.client, image).get("Labels") or {}).get(PYTHON_LABEL)
            if step.python and has and has != step.python:
                msg = (
                    f"step '{step.name}' asks for Python {step.python}, "
                    f"but runtime image {image} has Python {has}"
                )
                python, cuda, build = _build_command(step)
                env = CUDA_RUNTIME_IMAGE_ENV if cuda else RUNTIME_IMAGE_ENV
                tag = runtime_tag(python, cuda=cuda, slim=needs_slim(python))
                hint = (
                    f"run it in {tag} (`{build}`; unset {env}), "
                    f"give an image with Python {python}, or change the step's python"
                )
                raise ExecutorUnavailableError(msg, hint=hint)

    def _check_image_name(self, step: Step) -> None:
        """Refuse a docker-provider ``image`` the engine cannot parse (before a pull is tried)."""
        image = self._image(step)
        try:
            self._has_image(image)
        except ExecutionError as exc:
            cause = exc.__cause__
            why = str(getattr(cause, "explanation", "") or "")
            if "invalid reference format" not in why:
                raise
            reason = why.rpartition("invalid reference format")[2].lstrip(": ") or "invalid reference format"
            msg = f"image '{image}' of step '{step.name}' is not a valid image name: {reason}"
            hint = "write it as Docker does: lowercase [REGISTRY/]NAME[:TAG], e.g. image: myorg/trainer:2"
            raise ExecutionError(msg, hint=hint) from exc

    def start(self, job: StepJob) -> Handle:
        step = job.step
        image = self._image(step)
        (job.workdir / step.working_dir).mkdir(parents=True, exist_ok=True)
        owner = self.user if self.user[0] != 0 else None  # who the commands run as, unless root
        handed = make_home = False
        image_home = None
        chown_labels = _labels(job, "chown", self.home)
        if step.provider == "docker":
            self._ensure_image(image, step, job)
            user = image_user(self.client, image)
            owner = hand_over(self.client, job, image, user, chown_labels) if user else None
            handed = owner is not None
            inspect_labels = _labels(job, "inspect", self.home)
            if step.home_dir:
                make_home = not image_has_path(self.client, image, step.home_dir, inspect_labels)
            elif any(inside.startswith("~") for inside in job.mounts):
                image_home = docker_image_home(self.client, image, inspect_labels)
        kwargs = container_kwargs(
            job,
            image=image,
            user=self.user,
            network_mode=self.network_mode,
            home=self.home,
            image_home=image_home,
        )
        with docker_errors(f"creating the container of step '{step.name}'"):
            container = self.client.containers.create(**kwargs)
        try:
            if owner is not None or make_home:  # a root image's step makes its home as root
                own_folders_to_mounts(container, kwargs, owner or (0, 0), make_home=make_home)
            with docker_errors(f"starting the container of step '{step.name}'"):
                container.start()
        except BaseException:
            _remove(container)  # a created-but-never-started container is still a leftover
            if handed:
                chown_back(self.client, job, image, self.user, chown_labels)
            raise
        running = _Running(container, job, step.resources.memory_mib, handed=handed)
        return Handle(identifier=f"docker:{container.id}", native=running)

    def wait(self, handle: Handle) -> StepResult:
        running: _Running = handle.native  # type: ignore[assignment]
        container, job = running.container, running.job
        with running.lock:
            running.waiting = True
        try:
            with docker_errors(f"reading the output of step '{job.step.name}'"):
                lines = LineBuffer(job.on_line)
                for chunk in container.logs(stream=True, follow=True):
                    lines.feed(chunk)
                status = container.wait()
                # dockerd may end a follow stream before it flushes a last line without newline:
                # read the finished log once more and deliver whatever the stream missed.
                lines.catch_up(container.logs(stream=True, follow=False))
                lines.close()
                container.reload()
            code = int(status.get("StatusCode", -1))
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            if running.stopped or oom:
                code = -(code - 128) if code > 128 else code  # 128+N: killed by signal N
            if oom:
                msg = (
                    f"out of memory (limit {running.oom_limit} MiB; raise resources.memory or pass --memory)"
                    if running.oom_limit
                    else "out of memory"
                )
                return StepResult(exit_code=code, stopped=running.stopped, oom=True, message=msg)
            return StepResult(exit_code=code, stopped=running.stopped)
        finally:
            with running.lock:
                running.done = True
            if running.job.step.provider == "docker" and (self.user[0] != 0 or running.handed):
                labels = _labels(running.job, "chown", self.home)
                chown_back(self.client, running.job, container.image.id, self.user, labels)
            _remove(container)

    def stop(self, handle: Handle, grace: float = 10.0) -> None:
        running: _Running = handle.native  # type: ignore[assignment]
        with running.lock:
            running.stopped = True
        stop_container(running.container, grace)
        with running.lock:
            if running.waiting:
                return  # wait() removes it once it has read the exit status
        _remove(running.container)

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._own_client:
                self._client.close()
            self._client = None

    def _image(self, step: Step) -> str:
        """:func:`step_image`, but the default runtime tag's ``-slim`` variant when the engine
        has only that (a bash step needs only the venv), and always for a Python older than a
        full image allows (it comes only slim)."""
        image = step_image(step, self.runtime_image, self.cuda_runtime_image)
        python, cuda = step.python or DEFAULT_PYTHON, _wants_gpu(step)
        if step.provider == "docker" or image != runtime_tag(python, cuda=cuda):
            return image
        slim = runtime_tag(python, cuda=cuda, slim=True)
        if needs_slim(python) or (not self._has_image(image) and self._has_image(slim)):
            return slim
        return image

    def _has_image(self, image: str) -> bool:
        import docker.errors  # noqa: PLC0415

        with docker_errors(f"looking up image {image}"):
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                return False
        return True

    def _ensure_image(self, image: str, step: Step, job: StepJob | None = None) -> None:
        """Pull ``image`` (with the step's registry_auth) unless the engine has it: once, as a
        step on the same image waits for a pull in progress and then finds it here. Said first
        to ``on_pull``, and on the step's log when ``job`` is starting (a pull may take minutes)."""
        with self._lock:
            lock = self._pull_locks.setdefault(image, threading.Lock())
        with lock:
            if not self._has_image(image):
                if self.on_pull:
                    self.on_pull(image, step.name)
                if job is not None:
                    job.on_line(
                        f"dstack: Pulling image {image} for step '{step.name}': it is not on this machine"
                    )
                self._pull(image, step)

    def _pull(self, image: str, step: Step) -> None:
        auth = step.registry_auth
        auth_config = (
            {"username": auth.username, "password": auth.password} if auth and auth.username else None
        )
        doing = f"pulling image {image}"
        try:
            with docker_errors(doing):
                self.client.images.pull(image, auth_config=auth_config)
        except Exception as exc:
            refused = pull_refusal(exc, auth_config["username"] if auth_config else None)
            hint = REGISTRY_IMAGE_HINT if auth else IMAGE_HINT
            why, hint = refused or (str(exc).removeprefix(f"{doing}: "), hint.replace("IMAGE", image))
            msg = (
                f"image {image} of step '{step.name}' is not on this machine and pulling it failed: {why}"
                f"{did_you_mean(image, self._local_tags())}"
            )
            if auth and auth.password:  # dockerd does not echo it; never let a message carry it
                msg = msg.replace(auth.password, "***")
            raise ExecutorUnavailableError(msg, hint=hint) from exc

    def _local_tags(self) -> list[str]:
        """The engine's image tags (``name`` beside each ``name:latest``, as a step may write it);
        none when listing fails, as it only adds a suggestion to another error."""
        try:
            with docker_errors("listing the images on the Docker engine"):
                tags = [str(tag) for img in self.client.images.list() for tag in img.tags]
        except ExecutionError:
            return []
        return tags + [tag.removesuffix(":latest") for tag in tags if tag.endswith(":latest")]


def docker_client() -> Any:
    """``docker.from_env()``, or ExecutorUnavailableError naming the engine address and the fix."""
    import docker  # noqa: PLC0415

    with docker_errors("connecting to the Docker engine"):
        client = docker.from_env()  # type: ignore[attr-defined]
        client.ping()
    return client


def has_nvidia_runtime(info: dict[str, Any]) -> bool:
    """True when the engine can hand out NVIDIA GPUs (nvidia runtime, CDI device, or the hook here)."""
    if "nvidia" in (info.get("Runtimes") or {}):
        return True
    for dev in info.get("DiscoveredDevices") or []:
        if str(dev.get("ID", "")).startswith("nvidia.com/"):
            return True
    local = str(info.get("Name", "")) == os.uname().nodename
    return local and shutil.which("nvidia-container-runtime-hook") is not None


def stop_container(container: Any, grace: float) -> None:
    """SIGTERM (via init) then SIGKILL after ``grace`` seconds; 0 kills at once. Gone is fine."""
    import docker.errors  # noqa: PLC0415

    with docker_errors("stopping a step container"):
        try:
            if grace > 0:
                container.stop(timeout=max(1, round(grace)))
            else:
                container.kill()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running any more
                raise


def stop_by_identifier(identifier: str, grace: float = 10.0, *, client: Any = None) -> None:
    """Stop and remove the container of ``Handle.identifier`` (``docker:<id>``) from any process."""
    import docker.errors  # noqa: PLC0415

    kind, _, cid = identifier.partition(":")
    if kind != "docker" or not cid:
        msg = f"not a Docker step identifier: {identifier!r}"
        raise ValueError(msg)
    client = client or docker_client()
    with docker_errors(f"finding container {cid[:12]}"):
        try:
            container = client.containers.get(cid)
        except docker.errors.NotFound:
            return
    stop_container(container, grace)
    _remove(container)


def list_step_containers(*, run_name: str | None = None, client: Any = None) -> list[Any]:
    """Every container (running or not) labelled ``dstack.run``, of ``run_name`` if given."""
    client = client or docker_client()
    label = f"{RUN_LABEL}={run_name}" if run_name else RUN_LABEL
    with docker_errors("listing step containers"):
        return list(client.containers.list(all=True, filters={"label": label}))


def cleanup_containers(
    is_finished: Callable[[str], bool],
    *,
    home: str | None = None,
    key: str = RUN_LABEL,
    client: Any = None,
) -> list[str]:
    """Remove the step containers of ``home`` whose ``is_finished(<their key label>)``; return
    the removed ids.

    The "next command cleans up" rule: the engine calls this with ``key=FLOW_RUN_LABEL`` and a
    predicate that is true for runs its server knows ended (a run it does not know belongs to
    another server: not finished). ``home`` defaults to :func:`home_id` of this process's home;
    containers of other homes are never judged, nor ones without the ``key`` label. Containers
    from before the ``dstack.home`` label are judged only by flow run id (unique across servers),
    never by run name.
    """
    home = home or home_id()
    removed = []
    for container in list_step_containers(client=client):
        labels = container.labels or {}
        owner = labels.get(HOME_LABEL)
        ours = owner == home or (owner is None and key == FLOW_RUN_LABEL)
        if not ours:
            continue
        value = labels.get(key, "")
        if value and is_finished(value):
            stop_container(container, 0)
            _remove(container)
            removed.append(container.id)
    return removed


def _remove(container: Any) -> None:
    import docker.errors  # noqa: PLC0415

    with docker_errors("removing a step container"):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise


__all__ = [
    "DockerExecutor",
    "LineBuffer",
    "cleanup_containers",
    "container_kwargs",
    "default_runtime_image",
    "docker_client",
    "has_nvidia_runtime",
    "home_id",
    "list_step_containers",
    "runtime_image_hint",
    "step_command",
    "step_image",
    "stop_by_identifier",
    "stream_lines",
]
