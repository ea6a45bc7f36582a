"""Child process for the fault test: put_step that stops forever once the first blob is stored.

Usage: python _fault_child.py URL OPTIONS_JSON WORKDIR. Prints ``uploading`` when the first
blob is done, then blocks inside the progress callback until it is killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from dstack_prefect.storage import ArtifactStore


class StopAfterFirstBlob:
    """Progress sink that signals the parent and hangs after the first uploaded file."""

    def __init__(self) -> None:
        self.phase = ""
        self.lock = threading.Lock()

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        self.phase = phase

    def advance(self, files: int, nbytes: int) -> None:
        if self.phase == "upload" and files:
            with self.lock:  # the first uploader signals and hangs; the others queue here
                print("uploading", flush=True)
                time.sleep(600)


if __name__ == "__main__":
    url, options, workdir = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    ArtifactStore(url, options).put_step(
        "run-kill", "train", "train", workdir, ["out"], None, StopAfterFirstBlob()
    )
    print("finished", flush=True)
