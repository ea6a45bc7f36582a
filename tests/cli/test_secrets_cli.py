"""`dstack secrets` end to end: real CLI, the session's Prefect server, runs that use them.

Secrets are server-wide, so each test uses its own random names and deletes them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import CLI, Result, Server

pytestmark = pytest.mark.service("prefect")


@pytest.fixture
def name(cli: CLI, tmp_path: Path) -> Iterator[str]:
    secret = f"T_{uuid.uuid4().hex[:10].upper()}"
    yield secret
    cli("secrets", "delete", secret, "-y", cwd=tmp_path)


def piped(prefect_server: Server, home: Path, cwd: Path, stdin: str, *args: str) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", *args],
        cwd=cwd,
        env=prefect_server.env(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_add_list_update_delete_never_print_the_value(cli: CLI, tmp_path: Path, name: str) -> None:
    """add, list (table and --json), update, delete: the name shows, the value never does."""
    added = cli("secrets", "add", name, "first-value", cwd=tmp_path)
    table = cli("secrets", cwd=tmp_path)
    listed = cli("secrets", "--json", cwd=tmp_path).json()
    updated = cli("secrets", "update", name, "second-value", cwd=tmp_path)
    deleted = cli("secrets", "delete", name, "-y", cwd=tmp_path)
    after = cli("secrets", "--json", cwd=tmp_path).json()

    assert added.code == 0, added.text
    assert f"Secret {name} added" in added.out
    assert name in table.out and "UPDATED" in table.out
    assert name in [row["name"] for row in listed]
    assert updated.code == 0, updated.text
    assert deleted.code == 0, deleted.text
    assert name not in [row["name"] for row in after]
    everything = "".join(r.text for r in (added, table, updated, deleted)) + json.dumps(listed)
    assert "first-value" not in everything and "second-value" not in everything


def test_add_over_an_existing_secret_asks_and_update_needs_one(
    cli: CLI, tmp_path: Path, name: str, prefect_server: Server, dstack_home: Path
) -> None:
    """Replacing asks (no answer: nothing changes); -y replaces; update of a missing one says add."""
    cli("secrets", "add", name, "v1", cwd=tmp_path)

    refused = cli("secrets", "add", name, "v2", cwd=tmp_path)
    replaced = piped(prefect_server, dstack_home, tmp_path, "v3\n", "secrets", "add", name, "-y")
    missing = cli("secrets", "update", f"{name}_NOPE", "x", cwd=tmp_path)
    bad = cli("secrets", "add", "1-bad", "x", cwd=tmp_path)

    assert refused.code == 1
    assert f"hint: pass -y to confirm: dstack secrets add {name} -y" in refused.err
    assert replaced.code == 0, replaced.text
    assert "replaced" in replaced.out
    assert missing.code == 1 and "add it: dstack secrets add" in missing.err
    assert bad.code == 1 and "not a valid secret name" in bad.err and "Traceback" not in bad.err


def test_a_run_reads_a_stored_secret_and_never_shows_it(
    cli: CLI, make_repo: Any, name: str, prefect_server: Server
) -> None:
    """A step gets the stored value through ${{ secrets.NAME }} in env and in commands (there
    through a variable: no process's command line holds it); logs mask it, parameters hold only
    the reference (the YAML holds a digest, so any copy of the value came from the secret)."""
    digest = hashlib.sha256(b"stored-s3cret").hexdigest()[:16]
    repo = make_repo(
        {
            ".dstack/workflows.yaml": f"""
workflows:
  - name: uses-secret
    provider: bash
    env:
      - TOKEN=${{{{ secrets.{name} }}}}
    commands:
      - test "$(printf %s "$TOKEN" | sha256sum | cut -c1-16)" = "{digest}" && echo "token matches"
      - test "$(printf %s "${{{{ secrets.{name} }}}}" | sha256sum | cut -c1-16)" = "{digest}" && echo "ref ok"
      - cat /proc/$$/cmdline | tr '\\0' ' ' | grep -c "stored-s3cre[t]" || echo "not in the command line"
      - echo "leak attempt $TOKEN"
"""
        }
    )
    cli("secrets", "add", name, "stored-s3cret", cwd=repo)

    res = cli("run", "uses-secret", cwd=repo)

    assert res.code == 0, res.text
    assert "token matches" in res.out
    assert "ref ok" in res.out
    assert "not in the command line" in res.out
    assert "leak attempt ***" in res.out
    assert "stored-s3cret" not in res.text
    with PrefectAPI(prefect_server.url) as api:
        fr = next(f for f in api.flow_runs(limit=10) if "workflow:uses-secret" in f["tags"])
        assert "stored-s3cret" not in json.dumps(fr["parameters"])
        assert all("stored-s3cret" not in rec["message"] for rec in api.logs(fr["id"]))


def test_a_missing_secret_fails_the_run_before_it_starts(cli: CLI, make_repo: Any, name: str) -> None:
    repo = make_repo(
        {
            ".dstack/workflows.yaml": f"""
workflows:
  - name: needs-secret
    provider: bash
    env: ["TOKEN=${{{{ secrets.{name} }}}}"]
    commands: [echo never]
"""
        }
    )

    res = cli("run", "needs-secret", cwd=repo)
    runs = cli("ps", "-a", "--json", cwd=repo).json()

    assert res.code == 1
    assert f"the run needs secret(s) that are not set: {name}" in res.err
    assert f"dstack secrets add {name}" in res.err
    assert "Traceback" not in res.err
    assert not [r for r in runs if r["workflow"] == "needs-secret"]
