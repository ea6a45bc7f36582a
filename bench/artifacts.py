"""Benchmark: our artifact push to S3 (moto_server) against boto3's TransferManager and dvc push.

Run: python bench/artifacts.py [--small 2000] [--big 3] [--big-mib 60] [--concurrency 32]

It starts its own moto_server subprocess on a free port, writes 2000 random files of 1-20 KiB
(20x3 nested folders) plus 3 random 60 MiB files to a temporary folder, and times:

1. ours, put_step straight to s3:// (hash + list + upload missing blobs + manifest);
2. ours, put_step to a local store, then transfer() local -> s3:// (what `dstack push` does);
3. boto3 s3transfer.TransferManager, one manager for all files, same concurrency;
4. dvc push with dvc-s3, if a `dvc` binary is found (DVC_BIN, PATH or /tmp/dvc-venv/bin/dvc);
5. ours again with nothing changed: transfer() local -> s3:// and put_step to s3://.

moto measures moto more than S3 (it saturates a small machine's cores); read ratios, not MiB/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from overhead import find_dvc

from dstack_prefect.server import free_port

BUCKET = "bench"


#: moto accepts any credentials; these are what the script's clients send.
MOTO_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("moto_server")
    if exe is None:
        sys.exit("moto_server is not installed: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return proc, endpoint
        except urllib.error.HTTPError:
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not start")


def make_tree(root: Path, small: int, big: int, big_mib: int) -> tuple[int, int]:
    (root / "out").mkdir(parents=True, exist_ok=True)
    rnd = __import__("random").Random(42)
    total = 0
    for i in range(small):
        d = root / "out" / f"d{i % 20:02}" / f"s{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        data = os.urandom(rnd.randint(1024, 20 * 1024))
        (d / f"f{i:05}.bin").write_bytes(data)
        total += len(data)
    for i in range(big):
        with open(root / "out" / f"big{i}.bin", "wb") as fh:
            for _ in range(big_mib):
                fh.write(os.urandom(1 << 20))
        total += big_mib << 20
    return small + big, total


def timed(label: str, fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<52} {dt:8.2f} s", flush=True)
    return dt


def boto3_push(work: Path, endpoint: str, concurrency: int, prefix: str) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from s3transfer.manager import TransferManager

    client = boto3.client(
        "s3", endpoint_url=endpoint, config=Config(max_pool_connections=concurrency), **MOTO_CREDENTIALS
    )
    config = TransferConfig(max_concurrency=concurrency, multipart_chunksize=8 << 20)
    with TransferManager(client, config) as tm:
        futures = [
            tm.upload(str(p), BUCKET, f"{prefix}/{p.relative_to(work).as_posix()}")
            for p in sorted((work / "out").rglob("*"))
            if p.is_file()
        ]
        for f in futures:
            f.result()


def dvc_push(dvc: str, work: Path, endpoint: str, concurrency: int) -> float:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    repo = work.parent / "dvc-repo"
    shutil.copytree(work / "out", repo / "out")

    def run(*args: str) -> None:
        subprocess.run([dvc, *args], cwd=repo, env=env, check=True, capture_output=True)

    run("init", "--no-scm")
    run("remote", "add", "-d", "bench", f"s3://{BUCKET}/dvc")
    run("remote", "modify", "bench", "endpointurl", endpoint)
    run("add", "out")
    return timed(f"dvc push -j {concurrency}", lambda: run("push", "-j", str(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--big", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    from dstack_prefect.storage import ArtifactStore, transfer

    proc, endpoint = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="dstack-bench-"))
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, **MOTO_CREDENTIALS).create_bucket(Bucket=BUCKET)
        options = {
            "key": "testing",
            "secret": "testing",
            "batch_size": args.concurrency,
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        work = tmp / "work"
        files, nbytes = make_tree(work, args.small, args.big, args.big_mib)
        print(
            f"data: {files} files, {nbytes / 2**20:.1f} MiB; moto at {endpoint}; "
            f"concurrency {args.concurrency}; {os.cpu_count()} CPUs"
        )

        s3_direct = ArtifactStore(f"s3://{BUCKET}/direct", options)
        s3_push = ArtifactStore(f"s3://{BUCKET}/pushed", options)
        local = ArtifactStore(tmp / "local-store")

        ours = timed(
            "ours: put_step -> s3 (hash+list+upload+manifest)",
            lambda: s3_direct.put_step("run-1", "train", "train", work, ["out"]),
        )
        timed(
            "ours: put_step -> local store", lambda: local.put_step("run-1", "train", "train", work, ["out"])
        )
        push = timed(
            "ours: transfer local -> s3 (dstack push)", lambda: transfer(local, s3_push, runs=["run-1"])
        )
        boto = timed(
            f"boto3 TransferManager(max_concurrency={args.concurrency})",
            lambda: boto3_push(work, endpoint, args.concurrency, "boto3"),
        )
        dvc = find_dvc()
        dvc_t = None
        if dvc is None:
            print("  dvc not installed: skipped")
        else:
            try:
                dvc_t = dvc_push(dvc, work, endpoint, args.concurrency)
            except subprocess.CalledProcessError as exc:
                tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
                print(f"  dvc push failed ({dvc}; is dvc-s3 installed there?): skipped {tail}")
        again = timed(
            "ours: transfer local -> s3, nothing changed", lambda: transfer(local, s3_push, runs=["run-1"])
        )
        again_put = timed(
            "ours: put_step -> s3, nothing changed (re-hashes)",
            lambda: s3_direct.put_step("run-1", "train", "train", work, ["out"]),
        )

        print("ratios (>1 means ours is faster):")
        print(f"  boto3 / ours put_step  = {boto / ours:.2f}x")
        print(f"  boto3 / ours push      = {boto / push:.2f}x")
        if dvc_t is not None:
            print(f"  dvc / ours push        = {dvc_t / push:.2f}x")
        print(
            f"  unchanged push         = {again:.2f} s (goal < 1 s); unchanged put_step = {again_put:.2f} s"
        )
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
