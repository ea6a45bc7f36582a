"""`dstack config` and the DSTACK_* variables as a shell passes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def config(home: Path, **env: str) -> dict[str, object]:
    """`dstack config --json` with HOME=``home`` and ``env`` on top of a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
    done = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "config", "--json"],
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    """`DSTACK_HOME= dstack ...` (as `env -u` is often written) keeps ~/.dstack; it used to make
    the current folder the home, with runs and a store inside whatever folder one stood in."""
    shown = config(tmp_path, DSTACK_HOME="", DSTACK_STORE="", DSTACK_EXECUTOR="")

    assert shown["home"] == str(tmp_path / ".dstack")
    assert shown["store"] == str(tmp_path / ".dstack" / "store")
    assert shown["executor"] == "local"


def test_a_set_variable_wins_over_the_config_file(tmp_path: Path) -> None:
    """`dstack config --store` writes config.json; DSTACK_STORE in the environment overrides it."""
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "config", "--store", str(tmp_path / "kept")],
        env={**os.environ, "DSTACK_HOME": str(home)},
        capture_output=True,
        check=True,
        timeout=60,
    )

    assert config(tmp_path, DSTACK_HOME=str(home))["store"] == str(tmp_path / "kept")
    assert config(tmp_path, DSTACK_HOME=str(home), DSTACK_STORE=str(tmp_path / "env"))["store"] == str(
        tmp_path / "env"
    )
    assert config(tmp_path, DSTACK_HOME=str(home), DSTACK_STORE="")["store"] == str(tmp_path / "kept")


def test_json_says_where_each_setting_comes_from(tmp_path: Path) -> None:
    """`config --json` carries the table's FROM column: the variable that set a value, config.json
    or the default; an empty variable is not where a value comes from."""
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "config", "--executor", "docker"],
        env={**os.environ, "DSTACK_HOME": str(home)},
        capture_output=True,
        check=True,
        timeout=60,
    )

    shown = config(
        tmp_path, DSTACK_HOME=str(home), DSTACK_STORE=str(tmp_path / "env"), DSTACK_REMOTE_STORE=""
    )

    assert shown["from"] == {
        "home": "DSTACK_HOME",
        "store": "DSTACK_STORE",
        "remote_store": "default",
        "executor": "config.json",
    }


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    """DSTACK_STOP_GRACE=abc (or a zero sync interval) is a user mistake: a one-line reason
    naming the variable and what it is for, exit 1, no traceback."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
    for variable, value, why in [
        ("DSTACK_STOP_GRACE", "abc", "input should be a valid number"),
        ("DSTACK_MOUNT_SYNC_INTERVAL", "0", "input should be greater than 0"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "dstack_prefect", "ps"],
            env={**clean, "HOME": str(tmp_path), variable: value},
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert done.returncode == 1
        assert done.stderr.startswith(f"error: {variable}={value!r} is not valid: {why}"), done.stderr
        assert f"hint: fix or unset {variable}" in done.stderr
        assert "Traceback" not in done.stderr
