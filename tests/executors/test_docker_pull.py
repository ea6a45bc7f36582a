"""Missing docker-provider images: pulled in check(), once, before any step runs.

The engine pulls from a registry served here (:class:`LocalRegistry`, the Docker Registry HTTP
API's read side over one ``docker save`` of the tiny test image at ``127.0.0.1:PORT``, which the
engine trusts over plain HTTP), so a pull succeeds without the network and the registry counts
how often each tag was pulled. Given a username and password it asks for them with HTTP Basic
auth, as a private registry does (fixture ``private_registry``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import io
import json
import re
import tarfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from dstack_prefect.errors import ExecutorUnavailableError
from dstack_prefect.executors.docker import DockerExecutor
from dstack_prefect.graph import Step
from dstack_prefect.graph._plan import RegistryAuth
from tests.docker_fixtures import _has_image as has_image
from tests.executors.test_docker import make_job

pytestmark = pytest.mark.service("docker")

NAME = "dstack-test/pulled"
"""The one repository the local registry has."""
USERNAME = "me"
PASSWORD = "s3cret-Reg-Pass-7f2c"
"""The password of :func:`private_registry` (distinctive, so a leak of it can be searched for)."""
_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REALM = "dstack-test"
"""The Basic auth realm of an authenticating :class:`LocalRegistry`."""
_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


class LocalRegistry:
    """A read-only registry at ``host`` serving one image as :data:`NAME` under any tag;
    ``pulls[tag]`` counts the engine's pulls of each tag.

    With ``username`` and ``password`` it answers every request without them in an
    ``Authorization: Basic`` header (``/v2/`` included, which the engine asks first to learn
    how to log in) with 401 and ``WWW-Authenticate: Basic realm="dstack-test"``, as a private
    registry does. ``requests`` lists each request as ``(method, path, authorized)``.
    """

    def __init__(self, saved: bytes, *, username: str | None = None, password: str | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
            (entry,) = json.loads(_read(tar, "manifest.json"))
            config = self._add(_read(tar, entry["Config"]))
            layers = [self._add(_read(tar, name)) for name in entry["Layers"]]
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": _MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
                "layers": [
                    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", **layer} for layer in layers
                ],
            }
        ).encode()
        self.pulls: Counter[str] = Counter()
        self.requests: list[tuple[str, str, bool]] = []
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
            if username is not None and password is not None
            else None
        )
        self._headed: set[str] = set()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def count(self, ref: str, *, head: bool) -> None:
        """One pull of ``ref`` asks for its manifest with HEAD, GET, or HEAD then GET."""
        with self._lock:
            if head or ref not in self._headed:
                self.pulls[ref] += 1
            if head:
                self._headed.add(ref)
            else:
                self._headed.discard(ref)

    def authorized(self, header: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may read (always, without auth)."""
        if self._basic is None:
            return True
        return header is not None and hmac.compare_digest(header.encode(), self._basic.encode())

    def _add(self, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, *, body: bool) -> None:
                allowed = registry.authorized(self.headers.get("Authorization"))
                with registry._lock:
                    registry.requests.append((self.command, self.path, allowed))
                if not allowed:
                    self._refuse(body=body)
                    return
                match = _PATH.match(self.path)
                data, kind = (b"{}", "application/json") if self.path == "/v2/" else (None, "")
                if match and match["name"] != NAME:
                    data = None
                elif match and match["kind"] == "manifests":
                    data, kind = registry.manifest, _MANIFEST
                    registry.count(match["ref"], head=not body)
                elif match:
                    data, kind = registry.blobs.get(match["ref"]), "application/octet-stream"
                if data is None:
                    unknown = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(unknown)))
                    self.end_headers()
                    if body:
                        self.wfile.write(unknown)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if match:
                    self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _refuse(self, *, body: bool) -> None:
                """401 as the Docker registry answers it: a Basic challenge and an UNAUTHORIZED error."""
                error = {"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}
                data = json.dumps({"errors": [error]}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, name
    return member.read()


@pytest.fixture(scope="session")
def saved_tiny_image(docker_engine: Any, tiny_image: str) -> bytes:
    """``docker save`` of the tiny test image."""
    return b"".join(docker_engine.images.get(tiny_image).save())


@pytest.fixture(scope="session")
def local_registry(saved_tiny_image: bytes) -> Iterator[LocalRegistry]:
    """The tiny test image, pullable as ``<host>/dstack-test/pulled:<any tag>``."""
    registry = LocalRegistry(saved_tiny_image)
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def private_registry(saved_tiny_image: bytes) -> Iterator[LocalRegistry]:
    """The tiny test image behind HTTP Basic auth: user :data:`USERNAME`, password :data:`PASSWORD`."""
    registry = LocalRegistry(saved_tiny_image, username=USERNAME, password=PASSWORD)
    yield registry
    registry.close()


@contextlib.contextmanager
def _missing_image(registry: LocalRegistry, engine: Any) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:12]
    image = f"{registry.host}/{NAME}:{tag}"
    yield image, tag
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(image)


@pytest.fixture
def pullable(local_registry: LocalRegistry, docker_engine: Any) -> Iterator[tuple[str, str]]:
    """``(image, tag)``: a reference the engine does not have and can pull from the local
    registry; untagged again afterwards."""
    with _missing_image(local_registry, docker_engine) as pair:
        yield pair


@pytest.fixture
def private_pullable(private_registry: LocalRegistry, docker_engine: Any) -> Iterator[tuple[str, str]]:
    """``(image, tag)``: a reference the engine does not have and only
    :func:`private_registry` (with its credentials) gives; untagged again afterwards."""
    with _missing_image(private_registry, docker_engine) as pair:
        yield pair


@pytest.fixture
def executor(runtime_image: str) -> Iterator[DockerExecutor]:
    with DockerExecutor(runtime_image=runtime_image) as ex:
        yield ex


def test_check_pulls_a_missing_image_and_start_does_not_pull_it_again(
    executor: DockerExecutor,
    local_registry: LocalRegistry,
    pullable: tuple[str, str],
    docker_engine: Any,
    tmp_path: Path,
    run_name: str,
) -> None:
    """check() of a docker-provider step whose image is missing pulls it; the step then starts
    from it without a second pull."""
    image, tag = pullable
    step = Step(name="train", provider="docker", image=image, commands=["cat /etc/tiny-marker"])
    job, lines = make_job(step, tmp_path, run_name)

    executor.check(step)
    pulled_in_check = (has_image(docker_engine, image), local_registry.pulls[tag])
    result = executor.wait(executor.start(job))

    assert (True, 1) == pulled_in_check
    assert (0, ["tiny"]) == (result.exit_code, lines)
    assert 1 == local_registry.pulls[tag]


def test_steps_on_one_missing_image_pull_it_once(
    executor: DockerExecutor, local_registry: LocalRegistry, pullable: tuple[str, str]
) -> None:
    """Three docker-provider steps on the same missing image: one pull, in the first check()."""
    image, tag = pullable
    steps = [Step(name=f"s{i}", provider="docker", image=image, commands=["true"]) for i in range(3)]

    for step in steps:
        executor.check(step)

    assert 1 == local_registry.pulls[tag]


def test_a_step_with_registry_auth_is_pulled_at_its_start_not_in_check(
    executor: DockerExecutor,
    local_registry: LocalRegistry,
    pullable: tuple[str, str],
    docker_engine: Any,
    tmp_path: Path,
    run_name: str,
) -> None:
    """registry_auth may name secrets, resolved only when the step starts: check() leaves the
    pull to start(), which pulls it once, saying so on the step's log first."""
    image, tag = pullable
    auth = RegistryAuth(username="me", password="${{ secrets.REGISTRY_TOKEN }}")
    step = Step(name="train", provider="docker", image=image, registry_auth=auth, commands=["true"])
    resolved = RegistryAuth(username="me", password="token")
    job, lines = make_job(step.model_copy(update={"registry_auth": resolved}), tmp_path, run_name)

    executor.check(step)
    after_check = (has_image(docker_engine, image), local_registry.pulls[tag])
    result = executor.wait(executor.start(job))

    assert (False, 0) == after_check
    assert 0 == result.exit_code
    assert 1 == local_registry.pulls[tag]
    assert [f"dstack: Pulling image {image} for step 'train': it is not on this machine"] == lines


def test_a_missing_image_no_registry_has_fails_in_check(
    executor: DockerExecutor, local_registry: LocalRegistry
) -> None:
    """A missing image the pull cannot get fails in check(), before any step runs, with the
    image, the step, the registry's answer and how to get it onto the machine."""
    image = f"{local_registry.host}/dstack-test/none:1"
    step = Step(name="train", provider="docker", image=image, commands=["true"])

    with pytest.raises(
        ExecutorUnavailableError,
        match=rf"image {re.escape(image)} of step 'train' is not on this machine and pulling it failed: ",
    ) as err:
        executor.check(step)

    assert f"docker build -t {image} ." in (err.value.hint or "")


def private_step(image: str, password: str | None, commands: list[str] | None = None) -> Step:
    """A docker-provider step on ``image``, with registry_auth :data:`USERNAME` + ``password``
    (none at all when ``password`` is None)."""
    auth = RegistryAuth(username=USERNAME, password=password) if password is not None else None
    return Step(
        name="train", provider="docker", image=image, registry_auth=auth, commands=commands or ["true"]
    )


def test_registry_auth_logs_in_to_a_registry_that_asks_for_it(
    executor: DockerExecutor,
    private_registry: LocalRegistry,
    private_pullable: tuple[str, str],
    tmp_path: Path,
    run_name: str,
) -> None:
    """A registry behind Basic auth: the engine asks /v2/ without credentials, learns from the
    401's challenge that it wants Basic, and sends registry_auth's username and password with
    every request after; the step pulls its image and runs."""
    image, tag = private_pullable
    job, lines = make_job(private_step(image, PASSWORD, ["cat /etc/tiny-marker"]), tmp_path, run_name)
    seen = len(private_registry.requests)

    result = executor.wait(executor.start(job))

    asked = private_registry.requests[seen:]
    assert (0, "tiny") == (result.exit_code, lines[-1])
    assert ("GET", "/v2/", False) == asked[0]
    assert [] == [request for request in asked[1:] if not request[2]]
    assert 1 == private_registry.pulls[tag]


def test_a_registry_that_refuses_registry_auth_fails_the_step_saying_so(
    executor: DockerExecutor,
    private_registry: LocalRegistry,
    private_pullable: tuple[str, str],
    tmp_path: Path,
    run_name: str,
) -> None:
    """A wrong password: the step fails naming its image and itself, says the registry refused
    registry_auth's credentials and how to check the secret; the password shows nowhere."""
    image, tag = private_pullable
    wrong = "wrong-Reg-Pass-93ad"
    job, _ = make_job(private_step(image, wrong), tmp_path, run_name)

    with pytest.raises(ExecutorUnavailableError) as err:
        executor.start(job)

    assert err.value.message.startswith(
        f"image {image} of step 'train' is not on this machine and pulling it failed: "
        f"the registry refused the credentials of registry_auth (username '{USERNAME}'"
    ), err.value.message
    assert "`dstack secrets`" in (err.value.hint or "")
    assert wrong not in f"{err.value.message} {err.value.hint}"
    assert 0 == private_registry.pulls[tag]


def test_an_image_a_step_with_registry_auth_cannot_pull_gets_a_hint_for_that_case(
    executor: DockerExecutor, tmp_path: Path, run_name: str
) -> None:
    """registry_auth and a registry that does not answer: the hint says to check the image
    name, the registry from this machine and the credentials, not to give registry_auth."""
    image = "127.0.0.1:9/nowhere/none:1"
    job, _ = make_job(private_step(image, PASSWORD), tmp_path, run_name)

    with pytest.raises(ExecutorUnavailableError) as err:
        executor.start(job)

    assert err.value.message.startswith(f"image {image} of step 'train' is not on this machine"), err.value
    assert (
        f"check the image name, that its registry answers from this machine (`docker pull {image}` "
        "here), and registry_auth's username and password; or build it on this machine "
        f"(`docker build -t {image} .`) or load a saved one (`docker load -i FILE.tar`)"
    ) == err.value.hint


def test_a_registry_that_asks_for_credentials_a_step_has_not_given_fails_in_check(
    executor: DockerExecutor, private_registry: LocalRegistry, private_pullable: tuple[str, str]
) -> None:
    """No registry_auth for a registry that asks for credentials: check() fails saying so, with
    how to give them."""
    image, _ = private_pullable

    with pytest.raises(ExecutorUnavailableError) as err:
        executor.check(private_step(image, None))

    assert err.value.message.startswith(
        f"image {image} of step 'train' is not on this machine and pulling it failed: "
        "the registry asks for credentials and the step has no registry_auth"
    ), err.value.message
    assert "registry_auth: {username: USER, password: ${{ secrets.NAME }}}" in (err.value.hint or "")
