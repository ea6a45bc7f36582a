"""ArtifactStore: step manifests, tags, cache folders and pruning over one fsspec store."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from pydantic import BaseModel, ValidationError

from dstack_prefect.errors import ArtifactNotFoundError, IntegrityError

from . import _fetch, _prune, _tags
from ._backend import check_bucket, open_backend
from ._errors import translate_errors
from ._files import hash_many, unreadable_error, unreadable_folder_error, walk_artifacts
from ._model import (
    FileEntry,
    LsRow,
    Manifest,
    Tag,
    check_name,
    utc_now,
)
from ._progress import Progress
from ._prune import PRUNE_GRACE_S, PruneResult

M = TypeVar("M", bound=BaseModel)


class ArtifactStore:
    """Artifacts of runs in one fsspec store: a local folder, ``s3://bucket/prefix``, ``memory://name``...

    ``storage_options`` go to fsspec (for s3fs: ``key``, ``secret``, ``endpoint_url``,
    ``client_kwargs``...); ``batch_size`` among them sets how many transfers run at once (64).
    """

    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self._b = open_backend(self.url, self.storage_options)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def check(self, timeout_s: float = 5.0) -> str | None:
        """Ask an S3 store's endpoint about its bucket, in one short request (``dstack config``).

        StorageError when the endpoint answers that the bucket does not exist (every upload would
        fail); the reason, as text, when the store cannot be asked now (no connection, no
        credentials, access denied: it may work later, or from another machine); None when it
        answers, and for stores of other kinds (a folder is made when first written).
        """
        return check_bucket(self._b, self.storage_options, timeout_s)

    # writing ------------------------------------------------------------------------------
    def _store_files(
        self,
        workdir: Path,
        artifact_paths: Sequence[str],
        progress: Progress | None,
        absolute_root: Path | None = None,
        *,
        label: str,
        commit: Callable[[list[str], list[FileEntry], list[dict[str, str]]], Manifest],
    ) -> Manifest:
        """Walk, hash and upload the blobs the store lacks, then ``commit`` (write the manifest
        naming them) while still holding the store against prune (:meth:`Backend.writing`): a
        prune that runs meanwhile waits, so it never removes a blob this upload found or sent
        before the manifest names it.

        A file or folder the user cannot read (a container running as root leaves one) is a
        StorageError naming it as ``label`` (``run/step``) has it, not a store permission error.
        """
        artifacts, local, skipped = walk_artifacts(Path(workdir), artifact_paths, absolute_root)
        folder_error = unreadable_folder_error(skipped, label)
        if folder_error is not None:
            raise folder_error
        try:
            digests = hash_many([f.local for f in local], progress)
        except PermissionError as exc:
            error = unreadable_error(exc, local, artifacts, label)
            if error is None:
                raise
            raise error from exc
        entries = [
            FileEntry(path=f.path, size=size, sha256=d, mode=f.mode)
            for f, (d, size) in zip(local, digests, strict=True)
        ]
        first: dict[str, Path] = {}
        for f, e in zip(local, entries, strict=True):
            first.setdefault(e.sha256, f.local)
        with self._b.writing():
            have = self._b.existing_blobs(set(first))
            self._b.upload_blobs([(p, d) for d, p in first.items() if d not in have], progress)
            return commit(artifacts, entries, skipped)

    def _manifest_key(self, run: str, step: str) -> str:
        return self._b.key("manifests", check_name("run", run), check_name("step", step) + ".json")

    def _write_manifest(self, m: Manifest) -> None:
        self._b.write_atomic(self._manifest_key(m.run, m.step), m.model_dump_json().encode())

    def put_step(
        self,
        run: str,
        step: str,
        workflow: str | None,
        workdir: Path,
        artifact_paths: Sequence[str],
        extra: dict[str, Any] | None = None,
        progress: Progress | None = None,
        absolute_root: Path | None = None,
    ) -> Manifest:
        """Upload a step's artifacts (relative to ``workdir``, or absolute) and commit its manifest last.

        Absolute artifact paths are read as they are, or, with ``absolute_root``, from under it
        (``/opt/x`` from ``absolute_root/opt/x``: where a container's folder was mounted from);
        the manifest names them by their absolute path either way, as :meth:`materialize` takes it.
        Only blobs the store lacks are uploaded. Until the manifest is written the step does not
        exist for readers, so a killed upload is never half visible; running again completes it.
        """
        self._manifest_key(run, step)

        def commit(artifacts: list[str], files: list[FileEntry], skipped: list[dict[str, str]]) -> Manifest:
            m = Manifest(
                run=run,
                step=step,
                workflow=workflow,
                artifacts=artifacts,
                files=files,
                skipped=skipped,
                extra=dict(extra or {}),
            )
            self._write_manifest(m)
            return m

        with translate_errors(f"uploading the artifacts of {run}/{step}"):
            return self._store_files(
                workdir, artifact_paths, progress, absolute_root, label=f"{run}/{step}", commit=commit
            )

    def copy_manifest(self, manifest: Manifest, run: str, extra: dict[str, Any] | None = None) -> Manifest:
        """Commit ``manifest``'s files again under ``run`` (a reused step): no blob moves."""
        m = manifest.model_copy(
            update={"run": run, "created_at": utc_now(), "extra": {**manifest.extra, **(extra or {})}}
        )
        with translate_errors(f"writing the manifest of {run}/{m.step}"), self._b.writing():
            if self._b.is_local:  # a listing of a few folders: cheap here, not on S3
                # gone since the reuse decision (`dstack rm` and `prune`), or removed as damaged
                lost = {f.sha256 for f in m.files} - self._b.existing_blobs({f.sha256 for f in m.files})
                if lost:
                    raise _fetch.missing_error(
                        self._b, lost, {f.sha256: (f, manifest) for f in manifest.files}
                    )
            self._write_manifest(m)
        return m

    # reading manifests --------------------------------------------------------------------
    def get_manifest(self, run: str, step: str) -> Manifest:
        """The manifest of ``run``/``step``; ArtifactNotFoundError if it was never committed."""
        key = self._manifest_key(run, step)
        with translate_errors(f"reading the manifest of {run}/{step}"):
            try:
                data = self._b.read(key)
            except FileNotFoundError:
                msg = f"run {run!r} has no stored artifacts for step {step!r} in {self.url}"
                raise ArtifactNotFoundError(msg, hint="list runs with `dstack ps -a`") from None
        return self._parse(Manifest, key, data)

    def _parse(self, model: type[M], key: str, data: bytes) -> M:
        """``data`` read from ``key`` as a ``model``; IntegrityError naming the file when it is
        not one (cut short by a full disk, edited by hand), never a pydantic error."""
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise _damaged(self, key, exc) from None

    def _read_manifests(self, keys: Sequence[str]) -> list[Manifest]:
        found = self._b.read_many(keys)
        return [self._parse(Manifest, k, found[k]) for k in keys if k in found]

    def list_manifests(self, run: str) -> list[Manifest]:
        """Every committed step manifest of ``run``, by step name ([] for an unknown run)."""
        check_name("run", run)
        with translate_errors(f"listing the manifests of {run}"):
            return self._read_manifests(self._b.find_json("manifests", run))

    def list_runs(self) -> list[str]:
        """Names of the runs that have at least one committed manifest."""
        with translate_errors("listing runs"):
            return sorted({self._b.rel(k).split("/")[1] for k in self._b.find_json("manifests")})

    def find_manifests(
        self,
        workflow: str | None = None,
        predicate: Callable[[Manifest], bool] | None = None,
        *,
        run: str | None = None,
    ) -> list[Manifest]:
        """Manifests of ``workflow`` (and ``run``) that satisfy ``predicate``, newest first.

        For "the latest successful step of W whose cache key matches": ``find_manifests("W",
        lambda m: m.extra.get("status") == "done" and m.extra.get("cache_key") == key)[:1]``.
        """
        with translate_errors("searching manifests"):
            keys = (
                self._b.find_json("manifests", check_name("run", run))
                if run
                else self._b.find_json("manifests")
            )
            found = [
                m
                for m in self._read_manifests(keys)
                if (workflow is None or m.workflow == workflow) and (predicate is None or predicate(m))
            ]
        return sorted(found, key=lambda m: m.created_at, reverse=True)

    def resolve(self, ref: str, *, synced: bool = False) -> list[Manifest]:
        """The manifests ``ref`` names: ``RUN`` or ``:TAG`` (as in ``dstack ls|cp|pull``).

        With ``synced``, a run's steps that stored no manifest contribute their synced one
        (``extra.status == "synced"``: `mount: true` folders as last synced), as ``ls`` and
        ``cp`` show them.
        """
        if ref.startswith(":"):
            return self.get_tag(ref[1:]).manifests
        found = self.list_manifests(ref)
        if synced:
            stored = {m.step for m in found}
            found += [m for m in self.list_synced(ref) if m.step not in stored]
            found.sort(key=lambda m: m.step)
        if not found:
            msg = f"run {ref!r} has no stored artifacts in {self.url}"
            raise ArtifactNotFoundError(
                msg, hint="check the run name with `dstack ps -a`, or use :TAG for a tag"
            )
        return found

    def delete_run(self, run: str) -> int:
        """Delete the run's manifests, synced ones too (not its blobs: `prune` does that);
        returns how many."""
        check_name("run", run)
        with translate_errors(f"deleting run {run}"):
            keys = self._b.find_json("manifests", run) + self._b.find_json("synced", run)
            self._b.rm(keys)
            return len(keys)

    def delete_results(self, flow_run_id: str) -> None:
        """Delete the Prefect task results of flow run ``flow_run_id`` (``results/<id>/``: each
        step's manifest as JSON, written by the run's flow); none is no error."""
        check_name("flow run id", flow_run_id)
        with translate_errors(f"deleting the task results of flow run {flow_run_id}"):
            self._b.rm_tree("results", flow_run_id)

    # synced manifests (`mount: true`, written by _sync.StepSync) ---------------------------
    def _synced_key(self, run: str, step: str) -> str:
        return self._b.key("synced", check_name("run", run), check_name("step", step) + ".json")

    def list_synced(self, run: str) -> list[Manifest]:
        """The synced manifests of ``run``'s steps, by step name ([] when there are none)."""
        check_name("run", run)
        with translate_errors(f"listing the synced manifests of {run}"):
            return self._read_manifests(self._b.find_json("synced", run))

    def drop_synced(self, run: str, step: str) -> None:
        """Remove the step's synced manifest (its own manifest is stored); none is no error."""
        key = self._synced_key(run, step)
        with translate_errors(f"removing the synced manifest of {run}/{step}"):
            if self._b.exists(key):
                self._b.rm([key])
            if self._b.is_local:  # the run's folder, when that was its last step with one
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(key))

    # tags ---------------------------------------------------------------------------------
    def _tag_key(self, tag: str) -> str:
        return self._b.key("tags", check_name("tag", tag) + ".json")

    def add_tag(
        self,
        tag: str,
        run: str,
        workflow: str | None = None,
        manifests: Sequence[Manifest] | None = None,
        *,
        overwrite: bool = False,
    ) -> Tag:
        """Tag ``run``: the tag keeps copies of its manifests, so the artifacts outlive `delete_run`.

        ``workflow`` is the workflow the run was started with; without it, the workflow of the
        run's last committed step (the target finishes after every step it depends on). The
        name must pass :func:`check_tag_name`.
        """
        return _tags.add_tag(self, tag, run, workflow, manifests, overwrite=overwrite)

    def add_tag_from_dirs(
        self,
        tag: str,
        paths: Sequence[Path | str],
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> Tag:
        """Upload local folders as tag ``tag`` through a synthetic run ``tag-<tag>-<time>``.

        Each folder's artifact path is the path as given when it is relative and stays inside the
        current directory, else its absolute path.
        """
        return _tags.add_tag_from_dirs(self, tag, paths, overwrite=overwrite, progress=progress)

    def get_tag(self, tag: str) -> Tag:
        """The tag and its manifests; ArtifactNotFoundError if there is none."""
        key = self._tag_key(tag)
        with translate_errors(f"reading tag {tag}"):
            try:
                data = self._b.read(key)
            except FileNotFoundError:
                msg = f"cannot find the tag {tag!r} in {self.url}"
                raise ArtifactNotFoundError(msg, hint="list tags with `dstack tags`") from None
        return self._parse(Tag, key, data)

    def list_tags_names(self) -> list[str]:
        """Tag names, sorted."""
        with translate_errors("listing tags"):
            return sorted(self._b.rel(k)[len("tags/") : -len(".json")] for k in self._b.find_json("tags"))

    def list_tags(self) -> list[Tag]:
        """Every tag, newest first."""
        with translate_errors("listing tags"):
            keys = self._b.find_json("tags")
            found = self._b.read_many(keys)
            tags = [self._parse(Tag, k, found[k]) for k in keys if k in found]
        return sorted(tags, key=lambda t: t.created_at, reverse=True)

    def delete_tag(self, tag: str) -> None:
        """Delete the tag (its blobs stay until `prune`, unless a run still refers to them); one
        that no longer parses too. A tag of `-a` folders takes its synthetic run with it."""
        _tags.delete_tag(self, tag)

    def _tag_or_none(self, key: str) -> Tag | None:
        """The tag at ``key``; None when there is none or it no longer parses."""
        try:
            return Tag.model_validate_json(self._b.read(key))
        except (FileNotFoundError, ValidationError):
            return None

    def _drop_synthetic(self, old: Tag | None, keep: str | None = None) -> None:
        """Delete the synthetic run of ``old``, a tag of `-a` folders just deleted or moved (unless
        it is ``keep``): no command removes it otherwise, so prune would never free its files."""
        if old is not None and old.run != keep and any(m.extra.get("synthetic") for m in old.manifests):
            self._b.rm(self._b.find_json("manifests", check_name("run", old.run)))

    # pointers ----------------------------------------------------------------------------
    def _pointer_key(self, scope: Sequence[str], name: str) -> str:
        return self._b.key("index", *(_segment(part) for part in scope), _segment(name) + ".json")

    def set_pointer(self, scope: Sequence[str], name: str, manifest: Manifest) -> None:
        """Point ``scope``/``name`` at ``manifest``'s run and step (last writer wins): a lookup
        that costs one read however many manifests the store holds."""
        data = json.dumps({"run": manifest.run, "step": manifest.step}).encode()
        with translate_errors(f"writing the pointer {'/'.join(scope)}/{name}"):
            self._b.write_atomic(self._pointer_key(scope, name), data)

    def read_pointer(self, scope: Sequence[str], name: str) -> tuple[str, str] | None:
        """The (run, step) ``scope``/``name`` points at, or None when it was never set. The
        manifest itself may be gone since (`dstack rm`): `get_manifest` says so."""
        with translate_errors(f"reading the pointer {'/'.join(scope)}/{name}"):
            try:
                data = json.loads(self._b.read(self._pointer_key(scope, name)))
                return str(data["run"]), str(data["step"])
            except FileNotFoundError:
                return None
            except (ValueError, TypeError, KeyError):  # a damaged pointer: callers fall back to a full read
                return None

    # cache folders ------------------------------------------------------------------------
    def _cache_key(self, repo_id: str, workflow: str, path: str) -> str:
        return self._b.key(
            "cache", check_name("repo id", repo_id), _segment(workflow), _segment(path) + ".json"
        )

    def save_cache(
        self, repo_id: str, workflow: str, path: str, workdir: Path, progress: Progress | None = None
    ) -> Manifest:
        """Store cache folder ``path`` (relative to ``workdir`` or absolute) for (repo, workflow)."""
        key = self._cache_key(repo_id, workflow, path)

        def commit(artifacts: list[str], files: list[FileEntry], skipped: list[dict[str, str]]) -> Manifest:
            m = Manifest(
                run=f"cache:{repo_id}",
                step=path,
                workflow=workflow,
                artifacts=artifacts,
                files=files,
                skipped=skipped,
            )
            self._b.write_atomic(key, m.model_dump_json().encode())
            return m

        with translate_errors(f"saving cache {path}"):
            return self._store_files(workdir, [path], progress, label=f"cache {path}", commit=commit)

    def restore_cache(
        self,
        repo_id: str,
        workflow: str,
        path: str,
        workdir: Path,
        absolute_root: Path | str | None = None,
        progress: Progress | None = None,
    ) -> Manifest | None:
        """Restore cache folder ``path`` into ``workdir`` (overwriting); None when nothing was saved.

        A cache whose files are missing from the store or damaged (the damaged blobs are
        removed) is forgotten and None returned: a cache only saves time, and the step saves
        a fresh one after it runs.
        """
        key = self._cache_key(repo_id, workflow, path)
        with translate_errors(f"restoring cache {path}"):
            try:
                data = self._b.read(key)
            except FileNotFoundError:
                return None
        try:
            m = self._parse(Manifest, key, data)
            self.materialize([m], workdir, absolute_root=absolute_root, progress=progress)
        except (ArtifactNotFoundError, IntegrityError):
            with translate_errors(f"forgetting the damaged cache {path}"):
                self._b.rm([key])
            return None
        return m

    def prune_cache(self, repo_id: str, workflow: str) -> int:
        """Forget every cache folder of (repo, workflow); returns how many; blobs go at `prune`."""
        with translate_errors(f"pruning the cache of {workflow}"):
            keys = self._b.find_json("cache", check_name("repo id", repo_id), _segment(workflow))
            self._b.rm(keys)
            return len(keys)

    # reading files ------------------------------------------------------------------------
    def materialize(
        self,
        manifests: Iterable[Manifest],
        target_dir: Path,
        absolute_root: Path | str | None = None,
        progress: Progress | None = None,
    ) -> list[Path]:
        """Write the manifests' files under ``target_dir`` at their paths, each verified first.

        Absolute artifact paths land under ``absolute_root`` (a folder inside ``target_dir``, by
        default none: they are refused). Returns the written paths.
        """
        with translate_errors(f"downloading artifacts into {str(target_dir)!r}"):
            return _fetch.materialize(self._b, list(manifests), Path(target_dir), absolute_root, progress)

    def copy_out(
        self,
        manifests: Manifest | Iterable[Manifest],
        source: str,
        target: Path | str,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> list[Path]:
        """Copy artifact file or folder ``source`` to local ``target`` (``dstack cp``), verified.

        A folder's contents land in ``target``; one file lands at ``target``, or in it when it is
        a folder or a string ending in ``/`` (made if need be). A copy that fails removes the
        folders it made. ``name`` is how the caller named the manifests (``RUN`` or ``:TAG``),
        for the hints.
        """
        ms = [manifests] if isinstance(manifests, Manifest) else list(manifests)
        with translate_errors(f"copying {source!r} to {str(target)!r}"):
            return _fetch.copy_out(self._b, ms, source, target, overwrite, progress, name)

    @staticmethod
    def ls(
        manifests: Manifest | Iterable[Manifest],
        prefix: str | None = None,
        recursive: bool = False,
        *,
        name: str | None = None,
    ) -> list[LsRow]:
        """Rows for ``dstack ls``: one folder level (``sub/`` with summed sizes), or every file.

        A ``prefix`` no file is under raises ArtifactNotFoundError, naming the manifests as
        ``name`` (``RUN`` or ``:TAG``, as the caller named them; else their run names).
        """
        ms = [manifests] if isinstance(manifests, Manifest) else list(manifests)
        return _fetch.ls_rows(ms, prefix, recursive, name)

    # housekeeping -------------------------------------------------------------------------
    def referenced_blobs(self) -> set[str]:
        """Digests named by any manifest (synced ones too), tag or cache manifest."""
        with translate_errors("reading manifests"):
            keys = self._b.find_json("manifests") + self._b.find_json("synced") + self._b.find_json("cache")
            refs = {f.sha256 for m in self._read_manifests(keys) for f in m.files}
            for t in self.list_tags():
                refs |= {f.sha256 for m in t.manifests for f in m.files}
            return refs

    def prune(
        self,
        dry_run: bool = False,
        grace_s: float = PRUNE_GRACE_S,
        *,
        keep_young: bool = True,
        on_wait: Callable[[], None] | None = None,
    ) -> PruneResult:
        """Delete blobs nothing refers to; returns what was removed (or would be).

        Unreferenced blobs younger than ``grace_s`` seconds may belong to an upload whose
        manifest is not written yet: they are kept unless ``keep_young`` is False, and counted
        in ``young`` either way. What killed uploads left (``.tmp-`` files; on S3, incomplete
        multipart uploads, which no listing shows but S3 keeps and bills) is removed too: with
        ``keep_young``, only what has not been written to for ``grace_s``.

        On a local store, writers of this machine hold the store while what they upload is not
        yet named by a manifest (a step's artifacts, a cache folder, a sync, a pull): prune
        waits until none does (calling ``on_wait`` first, when one does), so even with
        ``keep_young`` False it never removes what a running upload is about to commit.
        """
        return _prune.prune(self, dry_run, grace_s, keep_young=keep_young, on_wait=on_wait)


def _segment(text: str) -> str:
    """``text`` as one readable key segment: %-quoted, never empty, never starting with '.'."""
    quoted = quote(text or "_", safe="")
    return "%2E" + quoted[1:] if quoted.startswith(".") else quoted


def _damaged(store: ArtifactStore, key: str, exc: ValidationError) -> IntegrityError:
    """The error for the manifest, tag or cache file at ``key`` that does not parse."""
    rel = store._b.rel(key)
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    detail = f"{where}: {first['msg']}" if where else first["msg"]
    msg = f"{rel} in {store.url} is damaged ({detail})"
    parts = rel.removesuffix(".json").split("/")
    by_hand = f"or delete it by hand: {key}"
    if parts[0] == "manifests":
        hint = f"copy a good one with `dstack pull {parts[1]} --force` (or push), {by_hand}"
    elif parts[0] == "synced":
        hint = f"the step's next sync replaces it; `dstack rm {parts[1]}` deletes it, {by_hand}"
    elif parts[0] == "tags":
        tag = "/".join(parts[1:])
        hint = (
            f"delete it with `dstack tags delete {tag} -y` and tag the run again, "
            f"or copy a good one with `dstack pull :{tag} --force`"
        )
    else:  # cache/<repo>/<workflow>/<path>
        workflow = unquote(parts[2]) if len(parts) > 2 else "WORKFLOW"
        hint = f"forget it with `dstack prune cache {workflow}` in the repo, {by_hand}"
    return IntegrityError(msg, hint=hint)
