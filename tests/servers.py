"""Real servers for the service tests, started and stopped by fixtures: SeaweedFS (S3),
PostgreSQL and ``veil serve`` itself, each a separate process on loopback ports. A server
the tests can share starts once a run (``tests/conftest.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "veil-test",
    "AWS_SECRET_ACCESS_KEY": "veil-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


QUICK = os.environ.get("VEIL_TEST_QUICK") == "1"
"""Set by ``scripts/test --quick``: tests that start a server process are left to the
full suite (each such start calls ``server_process``)."""


def server_process(what: str) -> None:
    """Skip the calling test under ``scripts/test --quick``: it starts ``what``."""
    if QUICK:
        pytest.skip(f"starts {what}: run by the full suite, not by --quick")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SeaweedFS:
    """``weed mini`` with every port given, optionally posting filer events to a webhook."""

    webhook_port: int | None = None
    """The port of the test server its webhook posts to, where a test runs one."""

    def __init__(
        self, root: Path, webhook: str | None = None, webhook_paths: tuple[str, ...] = ()
    ) -> None:
        server_process("SeaweedFS")
        self.root = root
        self.ports = {
            name: free_port() for name in ("master", "volume", "filer", "s3", "admin", "admin_grpc")
        }
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        (root / "data").mkdir(parents=True)
        (root / "log").mkdir()
        if webhook:
            # The filer reads notification.toml from its working folder.
            (root / "notification.toml").write_text(
                "[notification.webhook]\nenabled = true\n"
                f'endpoint = "{webhook}"\ntimeout_seconds = 5\nmax_retries = 3\n'
                "backoff_seconds = 1\nmax_backoff_seconds = 2\n"
                # Only events under these folders: others would wait on a closed port.
                + (
                    f"path_prefixes = {list(webhook_paths)!r}\n".replace("'", '"')
                    if webhook_paths
                    else ""
                )
            )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        p = self.ports
        args = [
            "weed",
            f"-logdir={self.root / 'log'}",
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
        ]
        with (self.root / "weed.out").open("wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                args,
                cwd=self.root,
                env={**os.environ, **S3_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            try:
                httpx.get(self.endpoint, timeout=1)
                return True
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "SeaweedFS S3 to answer")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGINT, 5.0)

    def buckets(self, *names: str) -> None:
        """Create each bucket not there yet (the run's tests share one SeaweedFS)."""
        s3 = self.client()
        there = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in there:
                s3.create_bucket(Bucket=name)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )


def serve_argv(data: Path, port: int, *args: str) -> list[str]:
    """The command line of ``veil serve`` on ``data`` and ``port``, run by this Python."""
    return [
        sys.executable,
        "-m",
        "veil.cli",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        *args,
    ]


class VeilServer:
    """``veil serve`` in its own process."""

    def __init__(
        self,
        data: Path,
        *args: str,
        port: int | None = None,
        api_key: str | None = None,
        env: dict[str, str] | None = None,
        own_key: bool = False,
    ) -> None:
        """``own_key``: without ``api_key``, let veil serve make its own key, as it does
        for users; otherwise the server is open (``--no-auth``), as the tests' clients
        send no key."""
        server_process("veil serve")
        self.data = data
        self.env = env or {}
        if api_key is None and not own_key and not any(a.startswith("--api-key") for a in args):
            args = (*args, "--no-auth")
        self.port = port or free_port()
        self.args = serve_argv(data, self.port, *args)
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VeilServer:
        self.data.mkdir(parents=True, exist_ok=True)
        with (self.data / "serve.log").open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                self.args,
                env={**os.environ, **S3_ENV, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"veil serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "veil serve to answer")
        return self

    def log(self) -> str:
        return (self.data / "serve.log").read_text(errors="replace")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.headers, timeout=30, **kw)

    def request_delete(self, path: str) -> httpx.Response:
        return httpx.delete(self.url + path, headers=self.headers, timeout=30)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/api/jobs/{job_id}")
        r.raise_for_status()
        return dict(r.json())

    def jobs(self) -> list[dict[str, Any]]:
        r = self.get("/api/jobs")
        r.raise_for_status()
        return list(r.json())

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (
                    (j := self.job(job_id))["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") and j
                ),
                timeout,
                f"job {job_id}",
            )
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGTERM, 15.0)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _pg_bin(name: str) -> str:
    """Debian keeps the server programs out of PATH, under /usr/lib/postgresql/<version>/bin."""
    import shutil

    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise AssertionError("PostgreSQL is not installed: apt-get install -y postgresql")
    return str(versions[-1] / name)


class PostgreSQL:
    """A throwaway PostgreSQL cluster on a loopback port, run as an unprivileged user."""

    def __init__(self, root: Path) -> None:
        server_process("PostgreSQL")
        self.root = root
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/veil"
        self._user = "postgres" if os.geteuid() == 0 else None  # the server refuses to run as root
        self.databases = 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        data, sock = self.root / "pgdata", self.root / "sock"
        self.root.mkdir(parents=True, exist_ok=True)
        sock.mkdir()
        if self._user:
            subprocess.run(["chown", "-R", self._user, str(self.root)], check=True)
            self.root.chmod(0o755)
        self._run(_pg_bin("initdb"), "-A", "trust", "-U", "postgres", "-D", str(data))
        self._start()
        self._run(
            _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "veil"
        )

    def new_database(self) -> PostgreSQLDatabase:
        """A database of its own on this cluster, for one test."""
        self.databases += 1
        name = f"veil_{self.databases}"
        self._run(
            _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name
        )
        return PostgreSQLDatabase(f"postgresql://postgres@127.0.0.1:{self.port}/{name}", self)

    def _start(self) -> None:
        sock = self.root / "sock"
        options = f"-k {sock} -p {self.port} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.root / "pgdata"),
            "-o",
            options,
            "-l",
            str(self.root / "pg.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(_pg_bin("pg_ctl"), "-D", str(self.root / "pgdata"), "-m", "immediate", "stop")

    def restart(self, down: float) -> None:
        """Stop the server as an operator would (``-m fast``: clients are disconnected),
        stay down ``down`` seconds, and start it again on the same port."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.root / "pgdata"), "-m", "fast", "-w", "stop")
        time.sleep(down)
        self._start()


@dataclass(frozen=True)
class PostgreSQLDatabase:
    """One test's database (``url``) on the cluster the run shares."""

    url: str
    cluster: PostgreSQL

    def restart(self, down: float) -> None:
        """The whole cluster stopped for ``down`` seconds (``PostgreSQL.restart``)."""
        self.cluster.restart(down)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgreSQL]:
    """A new PostgreSQL cluster, started, and removed afterwards."""
    # Not under pytest's folder: the server runs as another user, who must reach its files.
    root = Path(tempfile.mkdtemp(prefix="veil-pg-"))
    root.chmod(0o755)
    pg = PostgreSQL(root / "cluster")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


class VeilWorker:
    """``veil worker`` in its own process."""

    def __init__(self, data: Path, *args: str, worker_id: str | None = None) -> None:
        server_process("veil worker")
        self.data = data
        self.worker_id = worker_id
        """Its ID in the job database, where the test chose one."""
        more = ["--worker-id", worker_id] if worker_id else []
        self.args = [sys.executable, "-m", "veil.cli", "worker", "--data", str(data), *args, *more]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VeilWorker:
        self.data.mkdir(parents=True, exist_ok=True)
        with (self.data / "worker.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, env={**os.environ, **S3_ENV}, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def log(self) -> str:
        return (self.data / "worker.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGTERM, 15.0)

    def kill(self) -> None:
        """``kill -9``: no chance to tidy up or to say goodbye."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def enqueue(database: str, inbox: Path, key: str) -> str:
    """Queue a blur job as ``veil.queue.submit`` does, from outside any veil process
    (DBOS's client): so no process but the workers already running can take it."""
    from dbos import DBOSClient

    from veil.jobs import WORKFLOW_NAME, JobRequest, job_id_for
    from veil.runtime import QUEUE_NAME
    from veil.storage import LocalStorage

    store = LocalStorage(inbox)
    info = store.stat(key)
    job_id = job_id_for(store.url, key, info.etag)
    client = DBOSClient(system_database_url=database, application_name="veil")
    try:
        client.enqueue(
            {"queue_name": QUEUE_NAME, "workflow_name": WORKFLOW_NAME, "workflow_id": job_id},
            JobRequest(key, info.etag, info.size).to_dict(),
        )
    finally:
        client.destroy()
    return job_id
