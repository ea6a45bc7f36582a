"""Where one step's commands run, behind one small interface (see _base.py)."""

from dstack_prefect.executors._base import Executor, Handle, StepJob, StepResult

__all__ = ["Executor", "Handle", "StepJob", "StepResult"]
