"""The Python a local step asks for with `python:`.

Old dstack ran every step in a container of that Python; a local step runs on this machine,
so the engine looks for that interpreter here: `pythonX.Y` on the step's PATH, then in pyenv's
versions (`$PYENV_ROOT`, `~/.pyenv`) and uv's (`~/.local/share/uv/python`), and takes the first
that answers with that version (a pyenv shim of a version not selected fails and is passed
over). Found, the step gets a folder first on its PATH whose `python`, `python3`, `pip` and
`pip3` run it (`pip` as `python -m pip`, so `pip install` installs for the Python that runs
the code); scripts rather than symlinks, so a venv's interpreter keeps its venv. Not found,
the step runs with the machine's python3 and the run says so.

    exe = find_python("3.10", os.environ["PATH"])    # "/root/.pyenv/versions/3.10.13/bin/python3.10"
    write_shims(exe, folder)                          # folder/python, python3, pip, pip3
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


def probe(exe: str | None) -> str | None:
    """The MAJOR.MINOR version ``exe`` reports, or None when it cannot run."""
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and re.fullmatch(r"\d+\.\d+", text) else None


def _patch(path: Path) -> tuple[int, ...]:
    """The version in a ``.../3.10.13/bin/...`` or ``cpython-3.10.13-linux...`` path, for sorting."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", str(path))
    return tuple(int(n) for n in found.groups()) if found else ()


def candidates(version: str, path: str, home: Path | None = None) -> list[str]:
    """Where ``pythonX.Y`` may be: the PATH, then pyenv's and uv's versions, newest patch first."""
    home = home or Path.home()
    name = f"python{version}"
    found: list[str] = []
    on_path = shutil.which(name, path=path)
    if on_path:
        found.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    uv = home / ".local/share/uv/python"
    for pattern, root in ((f"{version}.*/bin/{name}", pyenv), (f"cpython-{version}.*/bin/{name}", uv)):
        found += [str(p) for p in sorted(root.glob(pattern), key=_patch, reverse=True)]
    return found


@functools.lru_cache(maxsize=32)
def find_python(version: str, path: str, home: Path | None = None) -> str | None:
    """The first interpreter of ``candidates`` that answers with ``version`` (asked once per
    run process: each probe starts an interpreter, and a run's steps often share a version)."""
    return next((exe for exe in candidates(version, path, home) if probe(exe) == version), None)


def write_shims(exe: str, folder: Path) -> None:
    """``python``, ``python3``, ``pip`` and ``pip3`` in ``folder`` that run ``exe``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = shlex.quote(exe)
    for name, command in (
        ("python", target),
        ("python3", target),
        ("pip", f"{target} -m pip"),
        ("pip3", f"{target} -m pip"),
    ):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)


def missing_python_note(step_name: str, version: str, path: str) -> str:
    """What the run says when no Python ``version`` is found for a local step."""
    host = probe(shutil.which("python3", path=path))
    runs_with = f"python3 here is {host}" if host else "this machine has no python3"
    return (
        f"step '{step_name}' asks for Python {version} and no python{version} was found on this"
        f" machine (PATH, pyenv, uv), so {runs_with}: install it (pyenv install {version}, or"
        f" uv python install {version}), or run in a container (dstack run ... --docker)"
    )
