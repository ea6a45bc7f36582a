"""The code snapshot of a plain folder: what a step sees of the repo (no services)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dstack_prefect.engine._snapshot import (
    copy_snapshot,
    copy_tree,
    hash_files,
    large_snapshot_note,
    step_files,
    take_snapshot,
)
from tests.conftest import write_tree


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plain folder (no git) that also holds the dstack home, as $HOME does for ~/.dstack."""
    root = tmp_path / "home"
    write_tree(root, {"train.py": "print(1)\n", "data/x.csv": "1\n", ".dstack/runs/r1/log": "x\n"})
    monkeypatch.setenv("DSTACK_HOME", str(root / ".dstack"))
    yield root


def test_the_dstack_home_inside_the_folder_is_left_out(folder: Path) -> None:
    """`dstack run bash -c ...` from $HOME does not copy ~/.dstack (runs, store, server) into itself."""
    snap = take_snapshot(folder)

    assert ["data/x.csv", "train.py"] == list(snap.files)


def test_sockets_are_left_out_and_the_copy_works(folder: Path, tmp_path: Path) -> None:
    """A Unix socket in the folder (a server's, an agent's) is not a file a step can get: skipped."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "agent.sock"))
        snap = take_snapshot(folder)
        copy_snapshot(snap, tmp_path / "copy")

    assert "agent.sock" not in snap.files
    assert "print(1)\n" == (tmp_path / "copy/train.py").read_text()


def test_a_snapshot_over_the_limit_names_its_largest_files(folder: Path) -> None:
    """Past the limit, the note gives the total and the three biggest files, biggest first."""
    (folder / "data/big.csv").write_bytes(b"x" * 5000)
    (folder / "data/mid.csv").write_bytes(b"x" * 3000)
    snap = take_snapshot(folder)

    note = large_snapshot_note(snap, limit=8000)

    assert note is not None
    assert note.startswith("the code snapshot is 8.0 kB in 4 files (largest: data/big.csv 5.0 kB,")
    assert "data/mid.csv 3.0 kB, train.py 9 bytes)" in note
    assert large_snapshot_note(snap, limit=9000) is None


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _commit(root: Path) -> None:
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")


def _copied(root: Path, target: Path) -> list[str]:
    """What a step sees: the snapshot copied into ``target``, every file and link listed."""
    copy_snapshot(take_snapshot(root), target)
    return sorted(
        (Path(d) / n).relative_to(target).as_posix()
        for d, dirs, files in os.walk(target)
        for n in files + [x for x in dirs if (Path(d) / x).is_symlink()]
    )


class TestGitRepo:
    def test_odd_names_modes_deletions_and_renames(
        self, make_repo: Callable[..., Path], tmp_path: Path
    ) -> None:
        """Names with spaces, unicode, a newline or a leading dash come through intact, the
        executable bit is kept, a tracked file deleted in the working tree is not there and a
        staged rename shows the new name only."""
        repo = make_repo(
            {
                "a b.py": "1",
                "ünï.txt": "2",
                "new\nline.txt": "3",
                "-dash": "4",
                "run.sh": "#!/bin/sh\n",
                "old.py": "5",
                "gone.py": "6",
            }
        )
        (repo / "run.sh").chmod(0o755)
        (repo / "gone.py").unlink()
        _git(repo, "mv", "old.py", "renamed.py")

        seen = _copied(repo, tmp_path / "step")

        assert ["-dash", "a b.py", "new\nline.txt", "renamed.py", "run.sh", "ünï.txt"] == seen
        assert os.access(tmp_path / "step/run.sh", os.X_OK)

    def test_submodules_and_nested_repos_bring_their_files(
        self, make_repo: Callable[..., Path], tmp_path: Path
    ) -> None:
        """An initialised submodule and a nested repo (not a submodule) are copied by their own
        git rules (tracked, and untracked not ignored); an uninitialised submodule is empty."""
        lib = make_repo({"lib.py": "L", ".gitignore": "*.tmp\n"}, name="lib")
        repo = make_repo({"main.py": "M"})
        for sub in ("vendor/lib", "vendor/off"):
            _git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), sub)
        _commit(repo)
        _git(repo, "submodule", "deinit", "-q", "vendor/off")
        write_tree(repo, {"vendor/lib/new.py": "N", "vendor/lib/x.tmp": "T"})
        nested = tmp_path / "repo/third_party/tool"
        write_tree(nested, {"tool.py": "T", "build/out.o": "O", ".gitignore": "build/\n"})
        _git(nested, "init", "-q")

        seen = _copied(repo, tmp_path / "step")

        assert [
            ".gitmodules",
            "main.py",
            "third_party/tool/.gitignore",
            "third_party/tool/tool.py",
            "vendor/lib/.gitignore",
            "vendor/lib/lib.py",
            "vendor/lib/new.py",
        ] == seen

    def test_a_dstack_folder_below_the_git_root_follows_git(
        self, make_repo: Callable[..., Path], tmp_path: Path
    ) -> None:
        """`.dstack/` in a subfolder of a git repo (a monorepo): the subfolder's snapshot keeps
        git's rules, the top .gitignore and .git/info/exclude included."""
        repo = make_repo({".gitignore": "*.pt\n", "ml/train.py": "1", "other/x.py": "2"})
        write_tree(repo, {"ml/model.pt": "w", "ml/notes.md": "n", "ml/scratch.txt": "s"})
        (repo / ".git/info/exclude").write_text("scratch.txt\n")

        seen = _copied(repo / "ml", tmp_path / "step")

        assert ["notes.md", "train.py"] == seen


class TestLinks:
    @pytest.fixture(params=[True, False], ids=["git-repo", "plain-folder"])
    def repo(self, make_repo: Callable[..., Path], tmp_path: Path, request: pytest.FixtureRequest) -> Path:
        write_tree(tmp_path / "data", {"rows.csv": "1\n"})
        repo = make_repo({"src/a.py": "A"}, git=request.param)
        for name, target in {
            "inside": "src/a.py",
            "srcdir": "src",
            "dangling": "nowhere",
            "data": "../data",
            "abs": str(tmp_path / "data/rows.csv"),
        }.items():
            (repo / name).symlink_to(target)
        return repo

    def test_links_stay_links_and_point_where_they_did(self, repo: Path, tmp_path: Path) -> None:
        """A step sees each link as a link that reaches what it reaches in the repo: one out of
        the repo by a relative path (`data -> ../data`) is made absolute in the copy; the files
        behind it are not copied."""
        seen = _copied(repo, tmp_path / "step")
        step = tmp_path / "step"

        assert ["abs", "dangling", "data", "inside", "src/a.py", "srcdir"] == seen
        assert "1\n" == (step / "data/rows.csv").read_text()
        assert str(tmp_path / "data") == os.readlink(step / "data")
        assert "src/a.py" == os.readlink(step / "inside")
        assert "nowhere" == os.readlink(step / "dangling")

    def test_a_link_is_hashed_by_where_it_points_never_followed(self, repo: Path, tmp_path: Path) -> None:
        """The code key reads a link's target path as git does: the file behind a link out of
        the repo is not read (through a link to /dev/zero, `dstack plan` never ended), and the step's
        copy hashes the same as the repo."""
        snap = take_snapshot(repo)
        before = hash_files(snap.root, snap.files)
        (tmp_path / "data/rows.csv").write_text("2\n")

        after = hash_files(snap.root, snap.files)
        copy_snapshot(snap, tmp_path / "step")
        copied = hash_files(tmp_path / "step", step_files(tmp_path / "step"))

        assert before == after
        assert sorted(before) == ["abs", "dangling", "data", "inside", "src/a.py", "srcdir"]
        assert before == copied


IGNORED = {
    "train.py": "1",
    "data/a.csv": "2",
    "data/keep.csv": "3",
    "data/sub/b.csv": "4",
    "logs/x.txt": "5",
    "src/logs/y.txt": "6",
    "build": "a file named like the folder pattern",
    "src/build/out.o": "7",
    "deep/a/b/ckpt.pt": "8",
    "model.pt": "9",
}


@pytest.mark.parametrize("git", [True, False], ids=["git-repo", "plain-folder"])
def test_dstackignore_reads_like_gitignore(make_repo: Callable[..., Path], git: bool) -> None:
    """.dstackignore has .gitignore's syntax: the last matching line wins (`!` takes a file
    back), `**/` is any number of folders (none too), a trailing `/` matches folders only, a
    leading `/` anchors at the repo root."""
    ignore = "data/*.csv\n!data/keep.csv\n**/ckpt.pt\n/logs/\nbuild/\n/model.pt\n# a comment\n"
    repo = make_repo({**IGNORED, ".dstackignore": ignore}, git=git)

    files = take_snapshot(repo).files

    assert [
        ".dstackignore",
        "build",
        "data/keep.csv",
        "data/sub/b.csv",
        "src/logs/y.txt",
        "train.py",
    ] == list(files)


def test_a_step_folder_gets_the_snapshot_over_what_it_holds(folder: Path, tmp_path: Path) -> None:
    """The copy into a step's folder keeps modes, times and links, and replaces a file or link
    left there (a step folder used before)."""
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    os.utime(folder / "train.py", (1_000_000, 1_000_000))
    (folder / "link").symlink_to("train.py")
    code = tmp_path / "code"
    copy_snapshot(take_snapshot(folder), code)
    step = tmp_path / "step"
    write_tree(step, {"train.py": "old\n", "data/x.csv": "old\n"})
    (step / "link").symlink_to("elsewhere")

    copy_tree(code, step)

    assert "print(1)\n" == (step / "train.py").read_text()
    assert "1\n" == (step / "data/x.csv").read_text()
    assert "train.py" == os.readlink(step / "link")
    assert os.access(step / "run.sh", os.X_OK)
    assert 1_000_000 == (step / "train.py").stat().st_mtime
