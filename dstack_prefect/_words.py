"""The rule for names a user types after a command and in YAML: run names and tag names.

A run name is a folder under the dstack home and a word on the command line (`dstack logs
NAME`); a tag is written ``:TAG`` on the command line and in deps (``owner/repo/NAME`` too). So
both are ASCII letters, digits, '.', '_' and '-', starting with a letter or a digit, at most 100
characters: no space (split by shells), '/' (a path), ':' (the tag marker) or leading '-' (read
as an option).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def word_problem(kind: str, name: str) -> tuple[str, str] | None:
    """None when ``name`` follows the rule; else the message naming ``kind`` ("run", "tag") and
    a name that does ('' when nothing of ``name`` is left)."""
    if _WORD.fullmatch(name):
        return None
    msg = (
        f"{kind} name {name!r} is not valid: use letters, digits, '.', '_' and '-', starting with a "
        "letter or digit (at most 100 characters)"
    )
    return msg, re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:100]
