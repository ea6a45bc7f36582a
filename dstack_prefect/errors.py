"""One exception tree for everything a user can get wrong or run into.

    DstackError                      base; ``hint`` says what to do next
    ├── SpecError                    one located problem in a workflow file (path, line, col, key)
    ├── SpecErrors                   every SpecError found in one pass over all files
    ├── NoWorkflowsError             no .dstack/ folder above the current directory
    ├── PlanError                    the workflows are valid but no plan can be built
    │   ├── UnknownWorkflowError     `dstack run X` where X is neither a workflow nor a provider
    │   └── CycleError               deps form a cycle (a -> b -> a)
    ├── ServerError                  the Prefect server cannot be started or reached
    │   └── ServerUnreachableError   nothing answers at the server's address (connection refused)
    ├── RunNotFoundError             no run with that name
    ├── RunStateError                the run is in the wrong state for the command (rm of a running run)
    ├── ExecutionError               a step could not run
    │   ├── ResourcesUnavailableError   the step asks for more than the machine has
    │   ├── ExecutorUnavailableError    the executor's backend (Docker engine, NVIDIA runtime) is missing
    │   └── StepFailedError             the step's commands exited non-zero
    └── StorageError                 the artifact store failed
        ├── ArtifactNotFoundError    a run, tag or artifact path is not in the store
        ├── IntegrityError           a blob's sha256 does not match its manifest; a damaged manifest
        └── UnsafePathError          a path would land outside its target folder

Programmer misuse (a wrong argument type, a call in the wrong order) raises builtins, not these.
The CLI maps each family to one exit code and prints ``message`` and ``hint``, never a traceback.
"""

from __future__ import annotations


class DstackError(Exception):
    """Base of every error dstack-prefect reports to a user."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class SpecError(DstackError):
    """One problem in a workflow file, located at ``path:line:col`` (1-based)."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "<unknown>",
        line: int = 1,
        col: int = 1,
        key: str = "",
        snippet: str = "",
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.key = key
        self.snippet = snippet
        self.detail = message
        where = f"{path}:{line}:{col}: "
        keypart = f"{key}: " if key else ""
        super().__init__(f"{where}{keypart}{message}", hint=hint)

    def render(self) -> str:
        """The one-line message followed by the offending source line and a caret."""
        return f"{self.message}\n{self.snippet}" if self.snippet else self.message

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "key": self.key,
            "message": self.detail,
        }


class SpecErrors(DstackError):
    """Every problem found in one pass over all workflow files."""

    hint = "fix the problems above, then run `dstack validate` again"

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        n = len(errors)
        head = f"{n} problem{'s' if n != 1 else ''} in the workflow files"
        super().__init__(head + "\n" + "\n".join(e.render() for e in errors))


class NoWorkflowsError(DstackError):
    """No ``.dstack/`` folder was found in the current directory or above it."""

    hint = "cd into your repo, or run `dstack init` there to create .dstack/workflows.yaml"


class PlanError(DstackError):
    """The workflows load but the requested run cannot be planned."""


class UnknownWorkflowError(PlanError):
    """``dstack run X``: X is neither a workflow nor a provider."""


class CycleError(PlanError):
    """Workflow deps form a cycle."""


class ServerError(DstackError):
    """The Prefect server cannot be started or reached."""


class ServerUnreachableError(ServerError):
    """Nothing answers at the server's address: it is down, or the address is wrong."""


class RunNotFoundError(DstackError):
    """No run with the given name."""

    hint = "list runs with `dstack ps -a`"


class RunStateError(DstackError):
    """The run is in the wrong state for the command."""


class ExecutionError(DstackError):
    """A step could not run."""


class ResourcesUnavailableError(ExecutionError):
    """The step asks for more CPUs, memory or GPUs than the machine has."""


class ExecutorUnavailableError(ExecutionError):
    """The executor's backend (a Docker engine, the NVIDIA runtime) is missing."""


class StepFailedError(ExecutionError):
    """A step's commands exited with a non-zero code."""

    def __init__(self, message: str, *, exit_code: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class StorageError(DstackError):
    """The artifact store failed."""


class ArtifactNotFoundError(StorageError):
    """A run, tag or artifact path is not in the store."""


class IntegrityError(StorageError):
    """A blob's content does not match the sha256 in its manifest, or a manifest or tag file does
    not parse (cut short, edited by hand)."""


class UnsafePathError(StorageError):
    """A manifest, tag or artifact path would land outside its target folder."""
