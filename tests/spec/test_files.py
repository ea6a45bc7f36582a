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


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    """A file saved as UTF-16 (Windows editors offer it) is named as such, with the way out."""
    (tmp_path / ".dstack").mkdir()
    (tmp_path / ".dstack" / "workflows.yaml").write_bytes("workflows: []".encode("utf-16"))

    assert problems(tmp_path) == [
        ".dstack/workflows.yaml:1:1: UTF-16 text, expected UTF-8; save the file as UTF-8"
    ]


def test_a_byte_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    """A Latin-1 byte in a comment or command is reported at its line and column, with the line."""
    (tmp_path / ".dstack").mkdir()
    text = "workflows:\n  - name: a\n    provider: bash\n    commands: [echo caf\u00e9]\n"
    (tmp_path / ".dstack" / "workflows.yaml").write_bytes(text.encode("latin-1"))

    _, errors = check_workflows(tmp_path)

    assert [e.message for e in errors] == [
        ".dstack/workflows.yaml:4:24: byte 0xe9 is not UTF-8 (Latin-1 '\u00e9'?), expected UTF-8 text;"
        " save the file as UTF-8"
    ]
    assert errors[0].snippet == "        commands: [echo caf\ufffd]\n                           ^"
