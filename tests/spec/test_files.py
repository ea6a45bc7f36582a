"""Workflow files that cannot be read are problems in the list, never silently passed over."""

from __future__ import annotations

from pathlib import Path

from dstack_prefect.spec import check_workflows

GOOD = "workflows:\n  - name: a\n    provider: bash\n    commands: [echo a]\n"


def problems(root: Path) -> list[str]:
    _, errors = check_workflows(root)
    return [e.message for e in errors]


def test_a_broken_link_is_an_error_next_to_the_good_files(tmp_path: Path) -> None:
    """A link to a deleted file is reported, with where it points; the good file still loads."""
    folder = tmp_path / ".dstack" / "workflows"
    folder.mkdir(parents=True)
    (folder / "good.yaml").write_text(GOOD)
    (folder / "gone.yaml").symlink_to(tmp_path / "deleted.yaml")

    workflows, _ = check_workflows(tmp_path)

    assert list(workflows.by_name) == ["a"]
    assert problems(tmp_path) == [
        f".dstack/workflows/gone.yaml:1:1: cannot be read: it links to {tmp_path / 'deleted.yaml'},"
        " which does not exist; fix or remove the link"
    ]


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (a file saved as UTF-16) are named as such."""
    (tmp_path / ".dstack").mkdir()
    (tmp_path / ".dstack" / "workflows.yaml").write_bytes("workflows: []".encode("utf-16"))

    assert problems(tmp_path) == [".dstack/workflows.yaml:1:1: not UTF-8 text, expected a UTF-8 YAML file"]
