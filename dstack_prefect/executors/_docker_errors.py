"""The one seam where docker-py and requests errors become ExecutionError subclasses.

Every Docker call of the executor and the image builder runs inside :func:`docker_errors`. The
mapping is a table of ``(library class, our class, hint)`` rows, most specific first;
``tests/executors/test_docker_errors.py`` enumerates every class in ``docker.errors`` and fails
on one this table does not name explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors as _d
import requests.exceptions as _r

from dstack_prefect.errors import (
    DstackError,
    ExecutionError,
    ExecutorUnavailableError,
    StepFailedError,
)

ENGINE_HINT = (
    "start the Docker engine (`sudo systemctl start docker`; in a dstack-prefect checkout "
    ".ci/docker-setup.sh), or point DOCKER_HOST at one that runs"
)
PERMISSION_HINT = (
    "add your user to the docker group and log in again, or point DOCKER_HOST at an engine you may use"
)
NVIDIA_HINT = (
    "install the NVIDIA driver and nvidia-container-toolkit on the Docker host, run "
    "`nvidia-ctk runtime configure --runtime=docker` and restart dockerd; or run the step without a GPU"
)
IMAGE_HINT = (
    "build it on this machine (`docker build -t IMAGE .`), load a saved one (`docker load -i FILE.tar`, "
    "from `docker save IMAGE` elsewhere), or give registry access (registry_auth)"
)
REGISTRY_IMAGE_HINT = (
    "check the image name, that its registry answers from this machine (`docker pull IMAGE` here), "
    "and registry_auth's username and password; or build it on this machine (`docker build -t IMAGE .`) "
    "or load a saved one (`docker load -i FILE.tar`)"
)
"""IMAGE_HINT for a step that has registry_auth: its pull failed for another reason than a refusal."""
CREDENTIALS_HINT = (
    "check registry_auth's username and password; a password from `${{ secrets.NAME }}` is the "
    "secret NAME that `dstack secrets` lists: set it again with `dstack secrets update NAME` "
    "(or DSTACK_SECRET_NAME for the run)"
)
LOGIN_HINT = (
    "give the step registry_auth: {username: USER, password: ${{ secrets.NAME }}}, "
    "with the password added by `dstack secrets add NAME`"
)
_AUTH_REFUSED = (
    "unauthorized",  # a registry's 401 (dockerd says only this for Basic auth)
    "authentication required",
    "incorrect username or password",  # Docker Hub's token server
    "no basic auth credentials",  # dockerd: a Basic challenge and no registry_auth to answer it
)

_Row = tuple[type[BaseException], type[ExecutionError], str | None]

_TABLE: list[_Row] = [
    # docker.errors, most specific first
    (_d.ImageNotFound, ExecutorUnavailableError, IMAGE_HINT),
    (_d.NotFound, ExecutionError, None),
    (_d.APIError, ExecutionError, None),
    (_d.ContainerError, StepFailedError, None),
    (_d.BuildError, ExecutionError, "read the build output above"),
    (_d.ImageLoadError, ExecutionError, None),
    (_d.InvalidVersion, ExecutorUnavailableError, "upgrade the Docker engine or docker-py"),
    (_d.InvalidRepository, ExecutionError, "check the image name"),
    (_d.InvalidConfigFile, ExecutorUnavailableError, "fix ~/.docker/config.json"),
    (_d.InvalidArgument, ExecutionError, None),
    (_d.DeprecatedMethod, ExecutionError, None),
    (
        _d.TLSParameterError,
        ExecutorUnavailableError,
        "check DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH",
    ),
    (_d.NullResource, ExecutionError, None),
    (_d.StreamParseError, ExecutionError, None),
    (_d.MissingContextParameter, ExecutorUnavailableError, "check the Docker context (docker context ls)"),
    (_d.ContextAlreadyExists, ExecutorUnavailableError, "check the Docker context (docker context ls)"),
    (_d.ContextNotFound, ExecutorUnavailableError, "check the Docker context (docker context ls)"),
    (_d.ContextException, ExecutorUnavailableError, "check the Docker context (docker context ls)"),
    (_d.DockerException, ExecutorUnavailableError, ENGINE_HINT),
    # the HTTP layer under docker-py
    (_r.ConnectionError, ExecutorUnavailableError, ENGINE_HINT),
    (_r.Timeout, ExecutionError, "the Docker engine did not answer in time; retry"),
    (_r.RequestException, ExecutionError, None),
]


def error_class_for(exc_type: type[BaseException]) -> type[ExecutionError] | None:
    """The ExecutionError subclass ``exc_type`` is translated to, or None if it passes through."""
    row = _row_for(exc_type)
    return row[1] if row else None


def _row_for(exc_type: type[BaseException]) -> _Row | None:
    for row in _TABLE:
        if issubclass(exc_type, row[0]):
            return row
    return None


def engine_address() -> str:
    """Where docker.from_env() looks for the engine, for messages."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def translate(exc: BaseException, doing: str) -> DstackError | None:
    """Our error for a library error ``exc`` met while ``doing`` something; None if not ours to map."""
    row = _row_for(type(exc))
    if row is None:
        return None
    _lib, ours, hint = row
    text = _explain(exc)
    if "could not select device driver" in text:
        msg = f"{doing}: the Docker engine has no NVIDIA GPU support ({text})"
        return ExecutorUnavailableError(msg, hint=NVIDIA_HINT)
    if ours is ExecutorUnavailableError and hint == ENGINE_HINT:
        cause = _os_cause(exc)
        why = (_WHY.get(type(cause)) or str(cause)) if cause is not None else text
        msg = f"Docker engine not reachable at {engine_address()}: {why} ({doing})"
        denied = isinstance(cause, PermissionError)
        return ExecutorUnavailableError(msg, hint=PERMISSION_HINT if denied else hint)
    if ours is StepFailedError:
        code = getattr(exc, "exit_status", None)
        return StepFailedError(f"{doing}: {text}", exit_code=code, hint=hint)
    return ours(f"{doing}: {text}", hint=hint)


def pull_refusal(exc: BaseException, username: str | None) -> tuple[str, str] | None:
    """``(why, hint)`` when a pull failed because the registry wants credentials: it refused
    registry_auth's (those of ``username``), or asked for some and the step gave none (``None``);
    else None.

    ``exc`` is the docker-py error or ours chained from it. dockerd asks ``/v2/`` without
    credentials first; a 401 there with ``WWW-Authenticate: Basic`` makes it send them with each
    request after, so a wrong password comes back from the manifest request as "unauthorized"
    and a missing one as "no basic auth credentials".
    """
    cause = exc.__cause__ if isinstance(exc, DstackError) and exc.__cause__ is not None else exc
    if not isinstance(cause, _d.APIError):
        return None
    text = _explain(cause)
    if not any(marker in text.lower() for marker in _AUTH_REFUSED):
        return None
    if username is not None:
        why = f"the registry refused the credentials of registry_auth (username '{username}'; it answered: "
        return f"{why}{text})", CREDENTIALS_HINT
    why = "the registry asks for credentials and the step has no registry_auth (it answered: "
    return f"{why}{text})", LOGIN_HINT


_WHY: dict[type[BaseException], str] = {
    FileNotFoundError: "no socket there",
    ConnectionRefusedError: "connection refused",
    PermissionError: "permission denied",
}


def _os_cause(exc: BaseException) -> OSError | None:
    """The OSError at the bottom of ``exc`` (docker-py wraps requests, which wraps urllib3, which
    keeps the socket's error in its args), or None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        err = todo.pop(0)
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and not isinstance(err, _r.RequestException):
            return err
        todo += [a for a in err.args if isinstance(a, BaseException)]
        todo += [e for e in (err.__cause__, err.__context__) if e is not None]
    return None


def _explain(exc: BaseException) -> str:
    if isinstance(exc, _d.APIError):
        # str(APIError) repeats the URL; the engine's own explanation is what a person needs.
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


@contextmanager
def docker_errors(doing: str) -> Iterator[None]:
    """Run the body; re-raise a docker-py/requests error as our matching error, chained with ``from``.

    ``doing`` names the operation for the message (``"starting step train"``). DstackError and
    programmer errors (TypeError, ...) pass through unchanged.
    """
    try:
        yield
    except DstackError:
        raise
    except Exception as exc:
        ours = translate(exc, doing)
        if ours is None:
            raise
        raise ours from exc
