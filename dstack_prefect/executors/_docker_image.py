"""The runtime images bash/code/lab/notebook steps run in, and how they are built.

    dstack-prefect/runtime:<version>-py<python>[-cuda][-slim]

The build never needs the network: a wheelhouse is made on the host (``pip wheel`` of this
source tree plus ``pip download`` of its dependencies, both through the host's pip
configuration and cache) and the Dockerfile installs from it with ``--no-index``. A slim image
(the tests' image) carries only a Python venv; the full one carries dstack-prefect and prefect.

``docker/build.sh`` and ``dstack image build`` both call :func:`build_runtime_image`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dstack_prefect import __version__
from dstack_prefect.errors import ExecutionError, ExecutorUnavailableError
from dstack_prefect.executors._docker_errors import docker_errors

DEFAULT_PYTHON = "3.11"
MIN_FULL_PYTHON = (3, 11)
"""The oldest Python a full image can have: dstack-prefect's (and prefect's) requires-python."""
BASE_IMAGE = "dstack-prefect/base:bookworm"
"""The registry-free Debian base .ci/docker-setup.sh makes with debootstrap (Python 3.11)."""
CUDA_BASE_IMAGE = "nvidia/cuda:12.6.3-runtime-ubuntu24.04"

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""Where an editable install (``pip install -e .``) has the source checkout."""


def find_source_tree(cwd: Path | None = None, *, package_root: Path = PACKAGE_ROOT) -> Path:
    """The dstack-prefect checkout whose ``docker/`` the images are built from.

    The package's own checkout with an editable install; else the current folder or one above
    it, so that ``pip install . && dstack image build`` in a checkout works too.

    Raises:
        ExecutionError: neither is a dstack-prefect checkout.
    """
    here = (cwd or Path.cwd()).resolve()
    for root in (package_root, here, *here.parents):
        if _is_source_tree(root):
            return root
    msg = (
        "images are built from a source checkout of dstack-prefect (its docker/ folder), "
        f"and neither {here} nor a folder above it is one"
    )
    raise ExecutionError(msg, hint="run `dstack image build` inside a clone of the dstack-prefect repository")


def _is_source_tree(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    if not (root / "docker" / "Dockerfile").is_file() or not pyproject.is_file():
        return False
    return re.search(r'^name\s*=\s*"dstack-prefect"', pyproject.read_text(errors="replace"), re.M) is not None


def runtime_tag(python: str = DEFAULT_PYTHON, *, cuda: bool = False, slim: bool = False) -> str:
    """The tag of the runtime image for ``python`` (``dstack-prefect/runtime:0.1.0-py3.11``)."""
    return (
        f"dstack-prefect/runtime:{__version__}-py{python}{'-cuda' if cuda else ''}{'-slim' if slim else ''}"
    )


def default_base(python: str, *, cuda: bool) -> str:
    """The base image used when none is given: a registry image (needs registry access)."""
    return CUDA_BASE_IMAGE if cuda else f"python:{python}-slim-bookworm"


def needs_slim(python: str) -> bool:
    """True when ``python`` is older than a full image allows (only ``--slim`` can have it)."""
    major, _, minor = python.partition(".")
    return (int(major), int(minor)) < MIN_FULL_PYTHON


def base_hint(python: str, *, cuda: bool) -> str:
    """How to give the build a base image with ``python`` without a registry."""
    load = "; or `docker load -i FILE.tar` one saved elsewhere"
    if cuda:
        return "pass --base IMAGE, an NVIDIA CUDA image on this engine (`docker images`)" + load
    hint = f"pass --base IMAGE, an image on this engine with Python {python} (`docker images`)"
    if python == DEFAULT_PYTHON:
        hint += f", e.g. {BASE_IMAGE} from .ci/docker-setup.sh"
    return hint + load


def _check_python(python: str, *, slim: bool) -> None:
    if not re.fullmatch(r"\d+\.\d+", python):
        msg = f"--python must be a Python major.minor such as {DEFAULT_PYTHON}, not '{python}'"
        raise ExecutionError(msg, hint=f"e.g. dstack image build --python {DEFAULT_PYTHON}")
    if not slim and needs_slim(python):
        oldest = ".".join(map(str, MIN_FULL_PYTHON))
        msg = (
            f"a full runtime image needs Python {oldest} or later (dstack-prefect and prefect do), "
            f"not {python}"
        )
        hint = (
            f"for `dstack run --docker` steps a bare venv is enough: "
            f"`dstack image build --python {python} --slim --base IMAGE` (an image with Python {python})"
        )
        raise ExecutionError(msg, hint=hint)


def build_runtime_image(
    *,
    python: str = DEFAULT_PYTHON,
    cuda: bool = False,
    base: str | None = None,
    slim: bool = False,
    if_missing: bool = False,
    on_line: Callable[[str], None] = print,
) -> str:
    """Build the runtime image and return its tag.

    ``base`` defaults to ``python:<python>-slim-bookworm`` (or an nvidia/cuda runtime image with
    ``cuda``); without registry access pass ``BASE_IMAGE``. ``slim`` skips dstack-prefect and
    prefect (a bare venv). ``if_missing`` returns at once when the tag already exists.

    Raises:
        ExecutorUnavailableError: no Docker engine, or the base image is missing.
        ExecutionError: no source checkout (:func:`find_source_tree`), the wheelhouse or the build
            failed.
    """
    import docker  # noqa: PLC0415

    _check_python(python, slim=slim)
    tag = runtime_tag(python, cuda=cuda, slim=slim)
    base = base or default_base(python, cuda=cuda)
    with docker_errors("connecting to the Docker engine"):
        client = docker.from_env()  # type: ignore[attr-defined]
    try:
        if if_missing and _has_image(client, tag):
            on_line(f"image {tag} present")
            return tag
        source = find_source_tree()
        _ensure_base(client, base, base_hint(python, cuda=cuda), on_line)
        if cuda:  # Dockerfile.cuda copies Python from the official image
            python_base = default_base(python, cuda=False)
            hint = f"`docker load -i FILE.tar` it (`docker save {python_base}` where a registry answers)"
            _ensure_base(client, python_base, hint, on_line)
        dockerfile = source / "docker" / ("Dockerfile.cuda" if cuda else "Dockerfile")
        with tempfile.TemporaryDirectory(prefix="dstack-image-") as ctx:
            context = Path(ctx)
            shutil.copy(dockerfile, context / "Dockerfile")
            wheels = context / "wheelhouse"
            wheels.mkdir()
            packages = ""
            full = None if cuda else _base_python(client, base)
            if full and not full.startswith(f"{python}."):
                msg = f"the base image {base} has Python {full}, not {python}"
                raise ExecutionError(msg, hint=f"pass --python {full.rsplit('.', 1)[0]}, or another --base")
            if not slim:
                cache = build_wheelhouse(source, python, full_version=full, on_line=on_line)
                if full:
                    _fill_gaps(client, base, cache, on_line)
                for whl in cache.glob("*.whl"):
                    _link_or_copy(whl, wheels / whl.name)
                packages = "dstack-prefect"
            on_line(f"building {tag} from {base}")
            args = {"BASE_IMAGE": base, "PYTHON": python, "PACKAGES": packages}
            with docker_errors(f"building image {tag}"):
                _build(client, context, tag, args, on_line)
        return tag
    finally:
        client.close()


def build_wheelhouse(
    source: Path, python: str, *, full_version: str | None = None, on_line: Callable[[str], None] = print
) -> Path:
    """docker/.wheelhouse/py<python> of ``source``: its wheel and every dependency's, for ``python``.

    ``full_version`` (``3.11.2``) is the image's exact Python when known: markers such as
    ``python_full_version < "3.11.3"`` depend on it. Dependency wheels are reused between builds
    (pip skips files already there); this tree's wheel is rebuilt each time.
    """
    out = source / "docker" / ".wheelhouse" / f"py{python}"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("dstack_prefect-*.whl"):
        old.unlink()
    on_line(f"wheelhouse {out}: this tree")
    _pip("wheel", "--no-deps", "-w", str(out), str(source))
    (own,) = out.glob("dstack_prefect-*.whl")
    target = ["--python-version", full_version or python]
    on_line(f"wheelhouse {out}: dependencies for Python {full_version or python}")
    _pip("download", "--only-binary=:all:", *target, "-d", str(out), str(own))
    return out


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "-q", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        msg = f"`pip {args[0]}` for the image's wheelhouse failed (exit {proc.returncode}):\n{tail}"
        raise ExecutionError(msg, hint="check that pip on this machine can reach its package index")


def _base_python(client: Any, base: str) -> str | None:
    """The exact Python version of ``base`` (None when the image is not here or has no python3)."""
    import docker.errors  # noqa: PLC0415

    try:
        out = client.containers.run(
            base,
            entrypoint=["python3", "-c", "import platform; print(platform.python_version())"],
            command=[],
            network_mode="none",
            remove=True,
        )
    except docker.errors.DockerException:
        return None
    version = out.decode().strip()
    return version or None


_MISSING = re.compile(r"No matching distribution found for ([^;\s]+)")


def _fill_gaps(client: Any, base: str, wheelhouse: Path, on_line: Callable[[str], None]) -> None:
    """Resolve the install offline inside ``base`` and download what the host's pip left out.

    The host's pip evaluates markers such as ``python_full_version < "3.11.3"`` for its own
    Python, not the image's, so a dependency the image needs can be missing from the wheelhouse.
    """
    import docker.errors  # noqa: PLC0415

    for _ in range(10):
        script = (
            "python3 -m venv /tmp/v >/dev/null && /tmp/v/bin/pip install -q --dry-run --no-index "
            "--disable-pip-version-check --find-links /wh dstack-prefect"
        )
        try:
            client.containers.run(
                base,
                entrypoint=["sh", "-c", script],
                command=[],
                volumes={str(wheelhouse): {"bind": "/wh", "mode": "ro"}},
                network_mode="none",
                remove=True,
            )
            return
        except docker.errors.ContainerError as exc:
            err = (exc.stderr or b"").decode(errors="replace")
            missing = _MISSING.findall(err)
            if not missing:
                msg = f"resolving the image's packages failed:\n{err[-1500:]}"
                raise ExecutionError(msg) from exc
        on_line(f"wheelhouse: adding {', '.join(missing)} (needed by the image's Python)")
        _pip("download", "--only-binary=:all:", "-d", str(wheelhouse), *missing)
    msg = "the wheelhouse still misses packages after 10 rounds"
    raise ExecutionError(msg)


def _ensure_base(client: Any, base: str, hint: str, on_line: Callable[[str], None]) -> None:
    """Pull ``base`` unless the engine has it; fail in one line, before any wheelhouse work."""
    with docker_errors("connecting to the Docker engine"):
        if _has_image(client, base):
            return
    on_line(f"pulling the base image {base}")
    doing = f"pulling the base image {base}"
    try:
        with docker_errors(doing):
            client.images.pull(base)
    except ExecutionError as exc:
        why = exc.message.removeprefix(f"{doing}: ")
        msg = f"the base image {base} is not on this Docker engine and pulling it failed: {why}"
        raise ExecutorUnavailableError(msg, hint=hint) from exc


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy(src, dst)


def _has_image(client: object, tag: str) -> bool:
    import docker.errors  # noqa: PLC0415

    try:
        client.images.get(tag)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return False
    return True


def _build(
    client: object, context: Path, tag: str, args: dict[str, str], on_line: Callable[[str], None]
) -> None:
    stream = client.api.build(  # type: ignore[attr-defined]
        path=str(context),
        tag=tag,
        buildargs=args,
        network_mode="host",
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    recent: deque[str] = deque(maxlen=12)
    for chunk in stream:
        if "error" in chunk:
            # The error names the failed RUN instruction; the lines before it say what went wrong.
            text = "\n".join([*recent, str(chunk["error"]).strip()[:300]])
            hint = None
            if "pull access denied" in text or "not found" in text or "dial tcp" in text:
                hint = (
                    f"the base image {args['BASE_IMAGE']} is not on this machine and no registry answered; "
                    f"make the local base with .ci/docker-setup.sh and pass --base {BASE_IMAGE}"
                )
            msg = f"building image {tag} failed: {text}"
            raise ExecutionError(msg, hint=hint)
        for line in str(chunk.get("stream", "")).splitlines():
            if line.strip():
                recent.append(line)
                on_line(line)


def main(argv: list[str] | None = None) -> int:
    """``docker/build.sh``: the same build without the CLI's imports."""
    parser = argparse.ArgumentParser(prog="docker/build.sh", description=build_runtime_image.__doc__)
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Python major.minor in the image")
    parser.add_argument("--cuda", action="store_true", help="build the CUDA variant (docker/Dockerfile.cuda)")
    parser.add_argument("--base", default=None, help="base image (default: a registry image)")
    parser.add_argument("--slim", action="store_true", help="a bare venv, without dstack-prefect and prefect")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the tag exists")
    opts = parser.parse_args(argv)
    try:
        tag = build_runtime_image(
            python=opts.python, cuda=opts.cuda, base=opts.base, slim=opts.slim, if_missing=opts.if_missing
        )
    except ExecutionError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
