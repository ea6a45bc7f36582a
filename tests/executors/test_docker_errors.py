"""The docker-py error seam: every library error becomes ours, with a message a person can act on."""

from __future__ import annotations

import inspect

import docker.errors
import pytest
import requests.exceptions
import urllib3.exceptions

from dstack_prefect.errors import ExecutionError, ExecutorUnavailableError
from dstack_prefect.executors._docker_errors import _TABLE, docker_errors, error_class_for, pull_refusal
from dstack_prefect.executors.docker import DockerExecutor
from dstack_prefect.graph import Step

DOCKER_ERRORS = sorted(
    (c for c in vars(docker.errors).values() if inspect.isclass(c) and issubclass(c, BaseException)),
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("exc_type", DOCKER_ERRORS, ids=lambda c: c.__name__)
def test_every_docker_error_is_mapped_explicitly(exc_type: type[BaseException]) -> None:
    """Each class in docker.errors has its own row, so a new docker-py error fails here first."""
    assert exc_type in [row[0] for row in _TABLE]
    assert issubclass(error_class_for(exc_type), ExecutionError)  # type: ignore[arg-type]


def test_rows_are_most_specific_first() -> None:
    """No row is shadowed by an earlier, more general one."""
    classes = [row[0] for row in _TABLE]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls


def test_gpu_driver_error_names_the_nvidia_runtime() -> None:
    """dockerd's 'could not select device driver' becomes ExecutorUnavailableError with the fix."""
    api = docker.errors.APIError(
        "500", explanation='could not select device driver "nvidia" with capabilities: [[gpu]]'
    )

    with (
        pytest.raises(ExecutorUnavailableError, match="no NVIDIA GPU support") as err,
        docker_errors("starting step"),
    ):
        raise api

    assert err.value.__cause__ is api
    assert "nvidia-container-toolkit" in (err.value.hint or "")


def test_unreachable_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """With no engine at DOCKER_HOST the executor says where it looked and how to start one."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    with (
        DockerExecutor() as ex,
        pytest.raises(
            ExecutorUnavailableError, match=r"Docker engine not reachable at unix:///nonexistent/docker.sock"
        ) as err,
    ):
        ex.check(Step(name="b", commands=["true"]))

    assert "no socket there" in str(err.value)
    assert "docker-setup.sh" in (err.value.hint or "")
    assert (err.value.hint or "").endswith("or run without --docker")


def test_a_socket_the_user_may_not_use_says_so_and_how_to_get_access() -> None:
    """Permission denied on the engine's socket (a user outside the docker group) is named as
    such, with the docker group as the fix, not "start the engine"."""
    inner = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", PermissionError(13, "Permission denied"))
    )
    outer = docker.errors.DockerException(f"Error while fetching server API version: {inner}")
    outer.__cause__ = inner

    with pytest.raises(ExecutorUnavailableError) as err, docker_errors("connecting to the Docker engine"):
        raise outer

    assert err.value.message.endswith(": permission denied (connecting to the Docker engine)")
    assert "docker group" in (err.value.hint or "")


def _pull_failed(explanation: str) -> ExecutionError:
    """Ours for a failed pull, chained from dockerd's answer, as docker_errors() raises it."""
    err = ExecutionError(f"pulling image a:1: {explanation}")
    err.__cause__ = docker.errors.APIError("500", explanation=explanation)
    return err


@pytest.mark.parametrize(
    ("explanation", "username", "why"),
    [
        ("unauthorized", "me", "the registry refused the credentials of registry_auth (username 'me'"),
        (
            'Get "https://registry-1.docker.io/v2/": unauthorized: incorrect username or password',
            "me",
            "the registry refused the credentials of registry_auth (username 'me'",
        ),
        (
            'Head "http://127.0.0.1:5000/v2/a/manifests/1": no basic auth credentials',
            None,
            "the registry asks for credentials and the step has no registry_auth",
        ),
    ],
    ids=["basic-401", "hub-token", "no-auth"],
)
def test_a_pull_refused_for_credentials_says_so(explanation: str, username: str | None, why: str) -> None:
    """dockerd's answers to a pull the registry refused for credentials read as such, with the
    engine's own words after and how to fix the credentials."""
    said, hint = pull_refusal(_pull_failed(explanation), username) or ("", "")

    assert said.startswith(why) and said.endswith(f"{explanation})"), said
    assert ("`dstack secrets`" if username else "registry_auth: {username: USER") in hint


def test_a_pull_that_failed_otherwise_is_no_refusal() -> None:
    """A missing manifest is not about credentials."""
    assert pull_refusal(_pull_failed("manifest for a:1 not found: manifest unknown"), "me") is None
