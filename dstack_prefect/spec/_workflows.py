"""What loading the workflow files of a repo gives: every workflow by name, where each is
defined (to locate anything inside it), and the warnings and problems found on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dstack_prefect.errors import SpecError
from dstack_prefect.spec import _locate
from dstack_prefect.spec._blocks import Dep
from dstack_prefect.spec._locate import Located
from dstack_prefect.spec._models import Workflow
from dstack_prefect.spec._yaml import Parsed
from dstack_prefect.spec._yaml import Path as KeyPath


@dataclass(frozen=True)
class SpecWarning:
    """A located note about a file that still loads, e.g. a legacy key and its modern form."""

    path: str
    line: int
    col: int
    key: str
    message: str

    def __str__(self) -> str:
        keypart = f"{self.key}: " if self.key else ""
        return f"{self.path}:{self.line}:{self.col}: {keypart}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "key": self.key,
            "message": self.message,
        }


@dataclass
class Source:
    """Where one workflow is defined, with what is needed to locate anything inside it."""

    path: str
    line: int
    parsed: Parsed
    index: int
    lines: list[str]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    def error(self, loc: KeyPath, message: str) -> SpecError:
        """A SpecError at ``loc`` inside this workflow (e.g. ``("deps", 0)``)."""
        full = ("workflows", self.index, *loc)
        line, col = self.parsed.locate(full)
        where = Located(self.path, line, col, _locate.key_path(full), message)
        return _locate.to_error(where, self.lines)

    def warning(self, loc: KeyPath, message: str, *, at_key: bool = False) -> SpecWarning:
        full = ("workflows", self.index, *loc)
        line, col = self.parsed.locate(full, key=at_key)
        shown = full[:-1] if at_key else full
        return SpecWarning(self.path, line, col, _locate.key_path(shown), message)


@dataclass
class Workflows:
    """Every workflow of a repo, by name, with where each is defined and any warnings."""

    root: Path
    files: list[Path] = field(default_factory=list)
    by_name: dict[str, Workflow] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    warnings: list[SpecWarning] = field(default_factory=list)
    unresolved: list[SpecError] = field(default_factory=list)
    """Deps naming a workflow no file defines, located: errors for validate and for a plan."""
    broken: dict[str, tuple[Source, list[tuple[int, Dep]]]] = field(default_factory=dict)
    """Workflows that did not validate, by name: where, and their deps that are valid on their
    own (checked with the others' for unknown names and cycles)."""
    owners: dict[tuple[str, int, int, str], set[str]] = field(default_factory=dict)
    """Each problem inside a workflow (by path, line, col, message): the names of the workflows
    it is in (several for one in an anchor that several merge). A problem outside any workflow
    (YAML syntax, the top level, an item without a name) has none."""
    warned: dict[tuple[str, int, int, str], set[str]] = field(default_factory=dict)
    """Each warning's place (path, line, col, message): the workflows it is about."""

    def source(self, name: str) -> str:
        """``file:line`` where workflow ``name`` is defined."""
        return str(self.sources[name])

    def own(self, where: Located | SpecError, name: str) -> None:
        """Note that the problem at ``where`` is inside workflow ``name``."""
        message = where.message if isinstance(where, Located) else where.detail
        self.owners.setdefault((where.path, where.line, where.col, message), set()).add(name)

    def owners_of(self, error: SpecError) -> set[str]:
        """The workflows ``error`` is inside; none for a problem outside any workflow."""
        return self.owners.get((error.path, error.line, error.col, error.detail), set())

    def warn(self, warning: SpecWarning, name: str) -> None:
        """Add ``warning``, about workflow ``name``."""
        self.warnings.append(warning)
        self.warned.setdefault((warning.path, warning.line, warning.col, warning.message), set()).add(name)

    def warnings_about(self, names: set[str]) -> list[SpecWarning]:
        """The warnings about any of the workflows ``names`` (a warning is about those whose
        definition it is in, several for one in an anchor that several merge)."""
        return [
            w for w in self.warnings if self.warned.get((w.path, w.line, w.col, w.message), set()) & names
        ]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.by_name)
