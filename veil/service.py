"""Running the service: ``veil serve`` (API, triggers and workers in one process) and
``veil worker`` (more workers sharing a PostgreSQL database).

Here the command line's settings (``veil.settings.ServeOptions``) become the jobs'
``veil.runtime.ServiceConfig``; here live the service's own key and address, and the two ways
to run: ``serve`` and ``work``. The top of veil's layers: it imports the API
(``veil.api``), the queue (``veil.queue``, which registers the workflows) and the
runtime; nothing in veil imports it but the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import threading
from pathlib import Path

from veil.api import Service, create_app
from veil.api.guard import machine_names
from veil.api.rekognition import RekognitionConfig
from veil.detector import usable_cores
from veil.erasure import Retention
from veil.errors import OptionError
from veil.queue import submit
from veil.runtime import (
    ServiceConfig,
    kept,
    launch,
    show_job_events,
    shutdown,
)
from veil.settings import AUDIT_FINDING_POLICIES, ServeOptions
from veil.storage import LocalStorage, storage_from_url
from veil.triggers import Poller

log = logging.getLogger("veil.service")
events = logging.getLogger("veil.jobs")


def service_config(opts: ServeOptions) -> ServiceConfig:
    data = private_folder(opts.data.resolve())
    input_store = storage_from_url(opts.input or str(data / "input"), s3_endpoint=opts.s3_endpoint)
    output_store = storage_from_url(
        opts.output or str(data / "output"), s3_endpoint=opts.s3_endpoint
    )
    if input_store.overlaps(output_store):
        # A job publishes under its input's key: the output would be read as an input (a
        # new job, again and again) or an upload could be made under an output's key.
        raise OptionError(
            f"the input ({input_store.url}) and the output ({output_store.url}) overlap: "
            "give them separate folders, or buckets or prefixes neither of which holds the other"
        )
    for store in (input_store, output_store):
        if isinstance(store, LocalStorage):
            store.root.mkdir(parents=True, exist_ok=True)
    database = opts.database or f"sqlite:///{data / 'veil.sqlite'}"
    if opts.workers < 1:
        raise OptionError("--workers must be 1 or more")
    if opts.on_audit_finding not in AUDIT_FINDING_POLICIES:
        raise OptionError(
            f"unknown --on-audit-finding {opts.on_audit_finding!r}; "
            f"choose one of {', '.join(AUDIT_FINDING_POLICIES)}"
        )
    data.mkdir(parents=True, exist_ok=True)
    return ServiceConfig(
        input=input_store,
        output=output_store,
        database_url=database,
        work_dir=data / "work",
        workers=opts.workers,
        worker_id=opts.worker_id or f"{socket.gethostname()}:{data}",
        max_bytes=opts.max_bytes,
        max_duration=opts.max_duration,
        max_fps=opts.max_fps,
        max_pixel_rate=opts.max_pixel_rate,
        webhook_hosts=opts.webhook_hosts,
        heartbeat_interval=opts.heartbeat_interval,
        heartbeat_timeout=opts.heartbeat_timeout,
        on_audit_finding=opts.on_audit_finding,
        write_report=opts.write_report,
        segment_seconds=opts.segment_seconds,
        # Jobs running side by side share the cores instead of each claiming all of them.
        blur=dataclasses.replace(opts.blur, threads=max(1, usable_cores() // opts.workers)),
    )


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MIN_KEY_LENGTH = 16
"""The shortest API key or secret key accepted: a blank or short key is a door anyone
can open (an unset shell variable gives ``--api-key ""``)."""


def key_problem(key: str) -> str | None:
    """What makes ``key`` unfit to be an API key or secret key, or ``None``. Never
    says the key itself: messages end up in logs."""
    if not key.strip():
        return "is empty"
    if len(key) < MIN_KEY_LENGTH:
        return f"is too short: use at least {MIN_KEY_LENGTH} characters"
    if not all("!" <= c <= "~" for c in key):
        # Printable ASCII without spaces: what survives an HTTP header and a line of a
        # key file unchanged, so the key given is the key that works.
        return "has spaces, control or non-ASCII characters"
    return None


def check_keys(opts: ServeOptions) -> None:
    """Refuse API keys and secret keys that do not keep anyone out."""
    for key in opts.api_keys:
        if problem := key_problem(key):
            raise OptionError(f"an API key (--api-key, --api-keys-file or VEIL_API_KEYS) {problem}")
    for key_id, secret in (opts.aws_keys or {}).items():
        if not key_id.strip():
            raise OptionError("an access key ID is empty")
        if problem := key_problem(secret):
            raise OptionError(f"the secret key of access key {key_id} {problem}")


API_KEY_FILE = "api-key"
"""Where, in the data folder, ``veil serve`` keeps the API key it made for itself."""


def private_folder(data: Path) -> Path:
    """The data folder, made if missing and kept readable by this user alone (0700): it
    holds the job database (thumbnails of faces), work copies of inputs and the API key.
    One owned by another user is refused: they could have planted a key or a database."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = data.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise OptionError(f"{data} belongs to another user: give veil a folder of its own")
    if info.st_mode & 0o077:
        data.chmod(0o700)
    return data


def stored_api_key(data: Path) -> str:
    """The service's own API key, kept in ``DATA/api-key`` (mode 0600): made on the first
    start without ``--api-key`` or ``--no-auth``, read on every later one, as Jupyter
    keeps its token. Without it every local user and process could read every video."""
    path = private_folder(data) / API_KEY_FILE
    try:
        # Not through a link: it could lead to a file someone else chose.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="ascii") as f:
            key = f.read().strip()
            owner = os.fstat(f.fileno()).st_uid
    except FileNotFoundError:
        try:
            # Made 0600 from the start (no moment where others could read it); a second
            # service starting at the same moment reads the first one's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return stored_api_key(data)
        key = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key + "\n")
        return key
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"cannot read the API key in {path}: {exc}") from exc
    if hasattr(os, "getuid") and owner != os.getuid():
        raise OptionError(f"{path} belongs to another user: delete it for a new key")
    if path.stat().st_mode & 0o077:
        raise OptionError(
            f"{path} may be read by other users: chmod 600 it, or delete it for a new key"
        )
    if problem := key_problem(key):
        raise OptionError(f"the API key in {path} {problem}; delete the file for a new one")
    return key


def check_listen_address(opts: ServeOptions) -> None:
    """Refuse keys that keep no one out, an API without keys beyond this machine, and an
    unsigned face-detection API beyond it unless told to."""
    check_keys(opts)
    if not opts.api_keys and not is_loopback(opts.host):
        raise OptionError(
            f"refusing to listen on {opts.host} without API keys (--no-auth): anyone on the "
            "network could read every video; drop --no-auth (veil serve then requires its "
            "own key) or pass --api-key"
        )
    if is_loopback(opts.host) or opts.insecure:
        return
    if opts.aws_keys is None:
        raise OptionError(
            f"refusing to serve the face-detection API unsigned (--no-aws-auth) on {opts.host}: "
            "give it --access-key and --secret-key, or pass --insecure"
        )


def host_names(opts: ServeOptions) -> frozenset[str]:
    """The names (``Host``) the API answers to: those given, the listen address when it
    is a name, and this machine's name when listening beyond loopback."""
    names = opts.public_hosts | {opts.host.lower()}
    return names if is_loopback(opts.host) else names | machine_names()


def serve(opts: ServeOptions) -> None:
    import uvicorn

    check_keys(opts)  # before anything is written
    own_key = None
    if not opts.api_keys and not opts.no_auth:
        own_key = stored_api_key(opts.data)
        opts = dataclasses.replace(opts, api_keys=frozenset({own_key}))
    check_listen_address(opts)
    config = service_config(opts)
    show_job_events()
    launch(config)
    interval = opts.poll_interval
    if interval is None:
        interval = 1.0 if isinstance(config.input, LocalStorage) else 5.0
    settle = isinstance(config.input, LocalStorage)
    poller = Poller(config.input, submit, interval, settle=settle) if interval > 0 else None
    if poller:
        poller.start()
    retention = None
    if opts.retention.inputs is not None or opts.retention.jobs is not None:
        retention = Retention(opts.retention, kept())
        retention.start()
    rekognition = RekognitionConfig(
        secrets=opts.aws_keys,
        region=opts.region,
        notification_webhook=opts.notification_webhook,
        max_face_jobs=opts.max_face_jobs,
        rate_limit=opts.rate_limit,
        buckets=opts.buckets,
    )
    app = create_app(
        Service(
            config=config,
            submit=submit,
            api_keys=opts.api_keys,
            host_names=host_names(opts),
            rekognition=rekognition,
        )
    )
    log.warning(
        "veil serve: %s -> %s, jobs in %s, API on http://%s:%d",
        config.input.url,
        config.output.url,
        config.database_url.split("@")[-1],
        opts.host,
        opts.port,
    )
    _announce_access(opts, own_key)
    address = _write_address(opts)
    try:
        uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning")
    finally:
        address.unlink(missing_ok=True)
        if poller:
            poller.stop()
        if retention:
            retention.stop()
        _stop(opts.stop_grace)
    _exit_now()


ADDRESS_FILE = "serve.json"
"""Where, in the data folder, a running ``veil serve`` says where it listens and which
process it is (``veil jobs`` sends the key only to that process)."""


def _write_address(opts: ServeOptions) -> Path:
    path = opts.data / ADDRESS_FILE
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    host = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": f"http://{host}:{opts.port}", "port": opts.port, "pid": os.getpid()}, f)
    return path


def running_address(data: Path) -> str:
    """The address of the ``veil serve`` of data folder ``data``, from its address file,
    once the port is seen to be that process's (``OptionError`` otherwise): a program of
    another user listening there after veil stopped would be sent the key."""
    try:
        facts = json.loads((data / ADDRESS_FILE).read_text(encoding="utf-8"))
        url, port, pid = str(facts["url"]), int(facts["port"]), int(facts["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OptionError(f"no running veil serve found for {data} ({exc}); pass --url") from None
    if not _listens_on(pid, port):
        raise OptionError(
            f"the veil serve of {data} (process {pid}) no longer listens on port {port}; pass --url"
        )
    return url


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (Linux's /proc)."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    sockets.add(f"socket:[{fields[9]}]")
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # no such process, or not ours to look into
        return False
    for fd in descriptors:
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                return True
    return False


def _announce_access(opts: ServeOptions, own_key: str | None) -> None:
    """How to open the page: with the service's own key (``own_key``) in the URL's
    fragment, which the browser keeps to itself (it reaches no server log), or, with
    ``--no-auth``, a warning at every start that the API is open to this whole machine."""
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    where = f"http://{host}:{opts.port}/"
    if opts.no_auth:
        log.warning(
            "veil serve: --no-auth: every user and process that can reach %s can download "
            "every original, approve held jobs and publish faces",
            where,
        )
    elif own_key is not None:
        log.warning(
            "veil serve: open %s#key=%s (the API key, kept in %s)",
            where,
            own_key,
            opts.data / API_KEY_FILE,
        )


def work(opts: ServeOptions) -> None:
    """A worker process: runs queued jobs (and recovers its own) until interrupted."""
    if not (opts.database or "").startswith("postgresql"):
        raise OptionError(
            "veil worker needs --database postgresql://...: a SQLite file serves one process, "
            "so extra workers can only share jobs through PostgreSQL"
        )
    show_job_events()
    launch(service_config(opts))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(opts.stop_grace)
    _exit_now()


def _stop(grace: float) -> None:
    """``shutdown`` with ``grace``; a second Ctrl-C during it stops at once."""
    try:
        shutdown(grace)
    except KeyboardInterrupt:
        log.warning("stopped at once: running jobs are resumed by another process")


def _exit_now() -> None:
    """End the process once the service stopped. A step still running past the grace
    would hold the interpreter's exit until it ended (``concurrent.futures`` joins its
    threads), minutes for a long video, although another process will resume its job:
    so the process ends here, its logs flushed."""
    logging.shutdown()
    os._exit(0)
