"""Whose a docker-provider step's files are, and where its home is.

A docker-provider step runs as its image's USER. When that is not root, :func:`hand_over` gives
the step folder and cache folders to it (a throwaway root container of the same image runs
``chown -R``) and :func:`chown_back` gives them back to the host user afterwards;
:func:`own_folders_to_mounts` makes the folders Docker would create as root on the way to a
``~`` mount the step user's, and a ``home_dir`` the image lacks (:func:`image_has_path`) too.
Without ``home_dir`` the step's ``~`` is :func:`image_home`, the HOME Docker gives the image's
USER.

Each helper takes the docker-py ``client`` and the ``labels`` its throwaway containers carry
(the step's, so the engine's cleanup finds one an orchestrator left behind).
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from dstack_prefect.executors._base import StepJob
from dstack_prefect.executors._docker_errors import docker_errors

WORKFLOW_DIR = "/workflow"
"""Where the step folder is mounted in every container."""


def image_config(client: Any, image: str) -> dict[str, Any]:
    """The image's ``Config`` (User, Labels, Env...) from ``docker image inspect``."""
    with docker_errors(f"inspecting image {image}"):
        return dict(client.images.get(image).attrs.get("Config") or {})


def image_user(client: Any, image: str) -> str:
    """The image's USER when it is not root (``app``, ``1234:1234``), else ``""``."""
    user = str(image_config(client, image).get("User") or "")
    return "" if user.partition(":")[0] in ("", "root", "0") else user


def image_home(client: Any, image: str, labels: dict[str, str]) -> str:
    """The HOME Docker gives a container of ``image``: its ``ENV HOME``, else its USER's home
    in the image's /etc/passwd (``/root`` for root, ``/`` for a user not listed there)."""
    config = image_config(client, image)
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        if key == "HOME" and value:
            return value
    user = str(config.get("User") or "").partition(":")[0]
    if user in ("", "root", "0"):
        return "/root"
    for line in read_image_file(client, image, "/etc/passwd", labels).splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and user in (fields[0], fields[2]):
            return fields[5] or "/"
    return "/"


def image_has_path(client: Any, image: str, path: str, labels: dict[str, str]) -> bool:
    """Whether ``path`` exists in ``image``: a stat (``HEAD .../archive``, as ``docker cp`` asks)
    in a created, never started, container without mounts (a stat of the step's own container
    would find the mount points Docker makes for it)."""
    with docker_errors(f"looking for {path} in image {image}"):
        container = client.containers.create(image, entrypoint=["true"], command=[], labels=labels)
        try:
            api = client.api
            url = f"{api.base_url}/v{api.api_version}/containers/{container.id}/archive"
            response = api.head(url, params={"path": path})
            if response.status_code == 404:
                return False
            response.raise_for_status()
            return True
        finally:
            container.remove(force=True)


def read_image_file(client: Any, image: str, path: str, labels: dict[str, str]) -> str:
    """The text of ``path`` in ``image`` ("" if absent), read from a created, never started, container."""
    import docker.errors  # noqa: PLC0415

    with docker_errors(f"reading {path} of image {image}"):
        container = client.containers.create(image, entrypoint=["true"], command=[], labels=labels)
        try:
            stream, _ = container.get_archive(path)
            data = io.BytesIO(b"".join(stream))
        except docker.errors.NotFound:
            return ""
        finally:
            container.remove(force=True)
    with tarfile.open(fileobj=data) as tar:
        member = tar.next()
        extracted = tar.extractfile(member) if member is not None else None
        return extracted.read().decode(errors="replace") if extracted is not None else ""


def hand_over(
    client: Any, job: StepJob, image: str, user: str, labels: dict[str, str]
) -> tuple[int, int] | None:
    """Give the workdir and cache folders to the image's non-root ``user`` for the step's run.

    They are the host user's folders (mode 755), which another uid cannot write. Returns the
    USER's numeric uid:gid, or None (said on ``job.on_line``) when ``chown`` failed, e.g. an
    image without one: the step then runs as it would have.
    """
    try:
        run_chown(client, job, image, user, labels)
    except Exception as exc:  # noqa: BLE001  the step still runs; say why it may not write
        job.on_line(f"dstack: could not give {job.workdir} to the image's user {user}: {exc}")
        return None
    st = job.workdir.resolve().stat()
    return st.st_uid, st.st_gid


def chown_back(
    client: Any, job: StepJob, image: str, host_user: tuple[int, int], labels: dict[str, str]
) -> None:
    """Give files a docker-provider step wrote in the workdir and its cache mounts back to
    ``host_user``.

    Runtime-image steps already run as the host uid; root on the host needs nothing unless
    the folders were handed to the image's user.
    """
    uid, gid = host_user
    try:
        run_chown(client, job, image, f"{uid}:{gid}", labels)
    except Exception as exc:  # the step's result stands; say why files may stay the image's  # noqa: BLE001
        job.on_line(f"dstack: could not chown {job.workdir} to {uid}:{gid}: {exc}")


def run_chown(client: Any, job: StepJob, image: str, owner: str, labels: dict[str, str]) -> None:
    """``chown -R owner`` the workdir and cache folders, as root in a throwaway ``image`` container."""
    volumes = {str(job.workdir.resolve()): {"bind": WORKFLOW_DIR, "mode": "rw"}}
    volumes.update(
        {
            str(h.resolve()): {"bind": f"/dstack-cache/{i}", "mode": "rw"}
            for i, h in enumerate(job.mounts.values())
        }
    )
    with docker_errors(f"changing the owner of {job.workdir} to {owner}"):
        client.containers.run(
            image,
            entrypoint=["chown", "-R", owner, *(v["bind"] for v in volumes.values())],
            command=[],
            user="0:0",
            volumes=volumes,
            network_mode="none",
            labels=labels,
            remove=True,
        )


def own_folders_to_mounts(
    container: Any, kwargs: dict[str, Any], owner: tuple[int, int], *, make_home: bool = False
) -> None:
    """Make the folders between HOME and each mount point under it ``owner``'s, in ``container``
    (created, not started); with ``make_home`` HOME itself too (a ``home_dir`` the image lacks).

    Docker makes a missing mount point's parents as root, so a step running as another uid
    could not write ~/.cache/other beside a mounted ~/.cache/pip, nor ~ itself when the image
    has no such folder (the folders above HOME stay root's, as ``mkdir -p`` would make them).
    """
    home = str(kwargs["environment"].get("HOME") or "").rstrip("/")
    folders: set[str] = {""} if make_home else set()
    for volume in kwargs["volumes"].values():
        target = str(volume["bind"])
        if not home or not target.startswith(home + "/"):
            continue
        parts = target[len(home) + 1 :].split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    if not folders:
        return
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for rel in sorted(folders):
            info = tarfile.TarInfo(f"{home.lstrip('/')}/{rel}".rstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            info.uid, info.gid = owner
            tar.addfile(info)
    with docker_errors("making the home folder and the folders on the way to the cache mounts"):
        container.put_archive("/", data.getvalue())
