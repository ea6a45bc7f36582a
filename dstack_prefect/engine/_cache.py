"""Step reuse by content hash: the cache key, and the reuse-or-run decision with its reason.

    key(step) = sha256( resolved spec      commands, setup, env (secret *references*), image,
                                          where it runs (local, or a container) ...
                      + code              sha256 of each snapshot file under `inputs` (all if
                                          unset; the workflow files themselves never: the
                                          resolved spec already holds what they say)
                      + deps' manifests   the files (path, sha256) each dep step produced )

A step is reused when the store holds a done manifest of the same workflow and repo with the
same key. `--rerun` forces a run; `--reuse` takes the deps' latest done steps whatever changed
(old dstack's rule; the target is decided by its key as always). The decision and why:
"no earlier done run" (none, or only stopped, failed or aborted ones), "spec changed (commands,
env)", "code changed (a.py, b.py)", "dep changed (prep)" (a tag dep as ":TAG"), "forced",
"reuse: same inputs as RUN".
Pure: no prefect import; `dstack plan` and the run flow share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dstack_prefect.errors import ArtifactNotFoundError, DstackError
from dstack_prefect.graph import IDE_PROVIDERS, Plan, Step
from dstack_prefect.storage import ArtifactStore, Manifest

#: 2: the workflow files left out of the code part, and where the step runs added to the spec.
KEY_VERSION = 2

#: The repo's workflow files: their content reaches the key through the resolved spec.
WORKFLOW_FILES = (".dstack/workflows.yaml", ".dstack/workflows.yml")


def step_executor(step: Step, default: str) -> str:
    """Where ``step`` runs: "docker" for docker-provider or ``image`` steps and for every step
    when the run asks for containers (``default``), else "local"."""
    return "docker" if step.provider == "docker" or step.image or default == "docker" else "local"


def spec_fields(step: Step, executor: str = "local") -> dict[str, Any]:
    """The resolved spec the key hashes, by field (what ``dstack plan`` names when it changes)."""
    return {
        "executor": executor,
        "provider": step.provider,
        "commands": step.commands,
        "setup": step.setup,
        "env": step.env,
        "working_dir": step.working_dir,
        "artifacts": [a.path for a in step.artifacts],
        "python": step.python,
        "image": step.image,
        "entrypoint": step.entrypoint,
        "home_dir": step.home_dir,
        "tag_deps": sorted(d.name for d in step.deps if d.kind == "tag"),
    }


def spec_digest(step: Step, executor: str = "local") -> str:
    return _digest(spec_fields(step, executor))


def spec_parts(step: Step, executor: str = "local") -> dict[str, str]:
    """One digest per spec field: a later decision names the fields that changed."""
    return {name: _digest(value) for name, value in spec_fields(step, executor).items()}


def code_files(step: Step, code: dict[str, str]) -> dict[str, str]:
    """The snapshot files (path -> sha256) that make up the step's code."""
    if step.inputs is None:
        return {p: d for p, d in code.items() if not _is_workflow_file(p)}
    patterns = [p.strip("/").removeprefix("./") for p in step.inputs]
    return {path: digest for path, digest in code.items() if any(_matches(path, p) for p in patterns)}


def _is_workflow_file(path: str) -> bool:
    return path in WORKFLOW_FILES or path.startswith(".dstack/workflows/")


def _matches(path: str, pattern: str) -> bool:
    """``inputs`` entries: a file, a folder (everything under it) or a glob (``src/*.py``)."""
    if pattern in ("", "."):
        return True
    return path == pattern or path.startswith(pattern + "/") or _glob(pattern).fullmatch(path) is not None


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """An ``inputs`` glob as a regex matching the files it names and everything under the
    folders it names: ``*`` and ``?`` as in fnmatch (across ``/`` too: a file too many only
    reruns a step), and ``**/`` any number of folders, none too (``**/*.py`` takes train.py)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close]
            negated = body[0] in "!^"
            out.append("[" + ("^" if negated else "") + body[negated:].replace("\\", "\\\\") + "]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + "(?:/.*)?", re.S)


def deps_digest(dep_manifests: list[Manifest]) -> str:
    return _digest(
        sorted([m.workflow or m.step, sorted((f.path, f.sha256) for f in m.files)] for m in dep_manifests)
    )


def deps_parts(dep_manifests: list[Manifest]) -> dict[str, str]:
    """One digest per dep: a later decision names the deps whose output changed, a tag dep as
    ``:TAG`` (not the workflow of the run it names)."""
    return {
        m.ref if m.ref.startswith(":") else m.workflow or m.step: _digest(
            sorted((f.path, f.sha256) for f in m.files)
        )
        for m in dep_manifests
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Fingerprint:
    spec: str
    code: dict[str, str]
    deps: str
    parts: dict[str, str] = field(default_factory=dict)
    """Digest per spec field (not part of the key)."""
    dep_parts: dict[str, str] = field(default_factory=dict)
    """Digest per dep (not part of the key)."""

    @property
    def key(self) -> str:
        return _digest({"v": KEY_VERSION, "spec": self.spec, "code": _digest(self.code), "deps": self.deps})

    def extra(self) -> dict[str, Any]:
        """What a manifest records so later decisions can say what changed."""
        return {
            "cache_key": self.key,
            "spec_digest": self.spec,
            "spec_parts": self.parts,
            "code": self.code,
            "deps_digest": self.deps,
            "deps_parts": self.dep_parts,
        }


def fingerprint(
    step: Step, code: dict[str, str], dep_manifests: list[Manifest], executor: str = "local"
) -> Fingerprint:
    return Fingerprint(
        spec=spec_digest(step, executor),
        code=code_files(step, code),
        deps=deps_digest(dep_manifests),
        parts=spec_parts(step, executor),
        dep_parts=deps_parts(dep_manifests),
    )


@dataclass
class Decision:
    action: str
    """"reuse" or "run"."""
    reason: str
    manifest: Manifest | None = None
    """The manifest reused, when action is reuse."""
    changed_files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.action == "reuse" and self.manifest is not None:
            return f"reuse {self.manifest.run} ({self.reason})"
        return f"run ({self.reason})"


def _done(repo_id: str) -> Any:
    return lambda m: m.extra.get("status") == "done" and m.extra.get("repo_id") == repo_id


def decide(
    store: ArtifactStore,
    step: Step,
    fp: Fingerprint | None,
    *,
    repo_id: str,
    force: bool = False,
    reuse_latest: bool = False,
    candidates: list[Manifest] | None = None,
) -> Decision:
    """Reuse or run ``step``, and why. ``fp`` None means a dep will run first.

    Raises:
        DstackError: ``reuse_latest`` and the workflow has no done run to reuse.
    """
    if force:
        return Decision("run", "forced")
    if step.provider in IDE_PROVIDERS:
        return Decision("run", f"{step.provider} is an IDE: it always starts")
    found = candidates if candidates is not None else store.find_manifests(step.name, _done(repo_id))
    if reuse_latest:
        if found:
            return Decision("reuse", "--reuse: the latest done run", found[0])
        msg = f"--reuse: workflow '{step.name}' has no done run to reuse"
        raise DstackError(msg, hint=f"run it first (dstack run {step.name}), or drop --reuse")
    if fp is None:
        if not found:
            return Decision("run", "no earlier done run")
        return Decision("run", "a dep runs first; reused if the dep's output comes out the same")
    key = fp.key
    for m in found:
        if m.extra.get("cache_key") == key:
            return Decision("reuse", "same inputs", m)
    if not found:
        return Decision("run", "no earlier done run")
    last = found[0].extra
    if last.get("spec_digest") != fp.spec:
        return Decision("run", _changed("spec changed", last.get("spec_parts") or {}, fp.parts))
    old: dict[str, str] = last.get("code") or {}
    changed = sorted(p for p in set(old) | set(fp.code) if old.get(p) != fp.code.get(p))
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        return Decision("run", f"code changed ({shown})", changed_files=changed)
    return Decision("run", _changed("dep changed", last.get("deps_parts") or {}, fp.dep_parts))


#: How ``spec changed (...)`` names a field.
_FIELD_NAMES = {"executor": "where it runs", "tag_deps": "tag deps"}


def _changed(what: str, old: dict[str, str], new: dict[str, str]) -> str:
    """ "spec changed (commands, env)", "dep changed (prep)": the parts whose digest differs; bare
    where the earlier manifest predates per-part digests."""
    if not old:
        return what
    names = [_FIELD_NAMES.get(n, n) for n in new if old.get(n) != new[n]]
    names += [_FIELD_NAMES.get(n, n) for n in old if n not in new]
    return f"{what} ({', '.join(names)})" if names else what


def done_manifests(store: ArtifactStore, repo_id: str) -> dict[str, list[Manifest]]:
    """Every done step manifest of the repo, by workflow, newest first (reads every manifest)."""
    by_workflow: dict[str, list[Manifest]] = {}
    for m in store.find_manifests(None, _done(repo_id)):
        by_workflow.setdefault(m.workflow or m.step, []).append(m)
    return by_workflow


LATEST = "latest"


def _scope(repo_id: str, workflow: str) -> tuple[str, str, str]:
    return ("reuse", repo_id, workflow)


def record_done(store: ArtifactStore, manifest: Manifest) -> None:
    """Index a done step manifest (run or reused) for later decisions: as its workflow's latest,
    and under its cache key. Written after the manifest: a crash between loses a reuse, never
    points at nothing that was not there."""
    repo_id = manifest.extra.get("repo_id")
    if manifest.extra.get("status") != "done" or not isinstance(repo_id, str):
        return
    scope = _scope(repo_id, manifest.workflow or manifest.step)
    store.set_pointer(scope, LATEST, manifest)
    key = manifest.extra.get("cache_key")
    if isinstance(key, str):
        store.set_pointer(scope, f"key-{key}", manifest)


def index_pulled(store: ArtifactStore, manifests: list[Manifest]) -> None:
    """Index done step manifests copied in from another store (`dstack pull`), so a later
    decision finds them: under their cache key where no manifest there has it already, and as
    their workflow's latest where they are newer than the one there."""
    for m in manifests:
        repo_id = m.extra.get("repo_id")
        if m.extra.get("status") != "done" or not isinstance(repo_id, str):
            continue
        scope = _scope(repo_id, m.workflow or m.step)
        key = m.extra.get("cache_key")
        if isinstance(key, str) and _pointed(store, scope, f"key-{key}") is None:
            store.set_pointer(scope, f"key-{key}", m)
        latest = _pointed(store, scope, LATEST)
        if latest is None or latest.created_at < m.created_at:
            store.set_pointer(scope, LATEST, m)


def _pointed(store: ArtifactStore, scope: tuple[str, str, str], name: str) -> Manifest | None:
    """The manifest ``scope``/``name`` points at; None without a pointer or when it is gone."""
    target = store.read_pointer(scope, name)
    if target is None:
        return None
    try:
        return store.get_manifest(*target)
    except ArtifactNotFoundError:
        return None


class History:
    """The done manifests a decision needs, through the store's index: a workflow's latest and
    the one with the step's cache key; two or three reads however long the history is.

    Falls back to reading every manifest of the store once (then memoized) where the index
    cannot answer: a workflow with no pointer yet (never run, or a store written before the
    index) or a pointer to a run removed since. Thread-safe: steps decide in parallel.
    """

    def __init__(self, store: ArtifactStore, repo_id: str) -> None:
        self.store = store
        self.repo_id = repo_id
        self._scan: dict[str, list[Manifest]] | None = None
        self._lock = threading.Lock()

    def _scanned(self, workflow: str) -> list[Manifest]:
        with self._lock:
            if self._scan is None:
                self._scan = done_manifests(self.store, self.repo_id)
            return self._scan.get(workflow, [])

    def _follow(self, workflow: str, name: str) -> Manifest | bool | None:
        """The manifest ``name`` points at; None when there is no pointer; False when it
        points at a manifest that is gone."""
        target = self.store.read_pointer(_scope(self.repo_id, workflow), name)
        if target is None:
            return None
        try:
            return self.store.get_manifest(*target)
        except ArtifactNotFoundError:
            return False

    def candidates(self, workflow: str, key: str | None) -> list[Manifest]:
        """Newest first: the workflow's latest done manifest, then the one with ``key`` if
        that is another (what `decide` reads: the first for --reuse and for why, any match)."""
        latest = self._follow(workflow, LATEST)
        if not isinstance(latest, Manifest):
            return self._scanned(workflow)
        if key is None or latest.extra.get("cache_key") == key:
            return [latest]
        keyed = self._follow(workflow, f"key-{key}")
        if keyed is False:
            return self._scanned(workflow)
        return [latest, keyed] if isinstance(keyed, Manifest) else [latest]


def plan_decisions(
    plan: Plan,
    store: ArtifactStore,
    repo_root: Path,
    *,
    rerun: str | list[str] | None = None,
    reuse: bool = False,
    executor: str = "local",
) -> dict[str, Decision]:
    """What `dstack run` would do for each step of ``plan``, without running anything.

    A step whose upstream will run is predicted to run; at run time the flow decides again
    with the upstream's real manifest, so identical outputs still mean reuse. ``executor``:
    the run's default executor (local or docker).

    Raises:
        DstackError: ``reuse`` and a dep workflow has no done run.
    """
    from dstack_prefect.engine._artifacts import repo_identity, tag_manifests  # noqa: PLC0415
    from dstack_prefect.engine._snapshot import hash_files, take_snapshot  # noqa: PLC0415

    snap = take_snapshot(repo_root)
    code = hash_files(snap.root, snap.files)
    repo_id = repo_identity(repo_root)
    history = History(store, repo_id)
    decisions: dict[str, Decision] = {}
    for step in plan.steps:
        ups = [decisions[u] for u in step.upstream if u in decisions]
        force = rerun == "all" or (isinstance(rerun, list) and step.name in rerun)
        fp = None
        if all(d.action == "reuse" and d.manifest is not None for d in ups):
            deps = [d.manifest for d in ups if d.manifest is not None] + tag_manifests(store, step)
            fp = fingerprint(step, code, deps, step_executor(step, executor))
        decisions[step.name] = decide(
            store,
            step,
            fp,
            repo_id=repo_id,
            force=force,
            reuse_latest=reuse and step.name != plan.target,
            candidates=[] if force else history.candidates(step.name, fp.key if fp else None),
        )
    return decisions
