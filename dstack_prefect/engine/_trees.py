"""Deleting a run's folders, also what its steps left read-only."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path


def remove_tree(path: Path) -> bool:
    """Delete ``path`` and everything under it; True when it is gone (or never was).

    A step may leave a folder without write or search permission (``chmod 500 out``, a tool's
    read-only cache): removing what is inside needs write permission on the folder, which the
    owner can always give back. So when a plain delete leaves something, every folder under
    ``path`` is made ``u+rwx`` and the delete runs again. What still stays (files of another
    user, e.g. a container's root that was not given back) is left, and False says so.
    """
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return True
    _own_folders(path)
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def _own_folders(folder: Path) -> None:
    """``u+rwx`` on ``folder`` and every folder below it (symlinks are not followed)."""
    with contextlib.suppress(OSError):
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode):
            return
        os.chmod(folder, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                _own_folders(Path(entry.path))
