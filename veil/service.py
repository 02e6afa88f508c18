"""Running the service: ``veil serve`` (API, triggers and workers in one process) and
``veil worker`` (more workers sharing a PostgreSQL database)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from veil.errors import OptionError
from veil.pipeline import BlurOptions
from veil.storage import LocalStorage, storage_from_url
from veil.triggers import Poller
from veil.video import MAX_INPUT_BYTES
from veil.workflow import ServiceConfig, launch, shutdown, submit

log = logging.getLogger("veil.service")


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    data: Path = Path("veil-data")
    input: str | None = None
    output: str | None = None
    s3_endpoint: str | None = None
    database: str | None = None
    workers: int = 1
    worker_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: frozenset[str] = frozenset()
    aws_keys: dict[str, str] | None = None
    """Access key ID → secret for the face-detection API; None turns its auth off."""
    notification_webhook: str | None = None
    max_face_jobs: int = 20
    rate_limit: float | None = None
    insecure: bool = False
    poll_interval: float | None = None
    max_bytes: int = MAX_INPUT_BYTES
    blur: BlurOptions = field(default_factory=BlurOptions)


def service_config(opts: ServeOptions) -> ServiceConfig:
    data = opts.data.resolve()
    input_store = storage_from_url(opts.input or str(data / "input"), s3_endpoint=opts.s3_endpoint)
    output_store = storage_from_url(
        opts.output or str(data / "output"), s3_endpoint=opts.s3_endpoint
    )
    for store in (input_store, output_store):
        if isinstance(store, LocalStorage):
            store.root.mkdir(parents=True, exist_ok=True)
    database = opts.database or f"sqlite:///{data / 'veil.sqlite'}"
    if opts.workers < 1:
        raise OptionError("--workers must be 1 or more")
    data.mkdir(parents=True, exist_ok=True)
    return ServiceConfig(
        input=input_store,
        output=output_store,
        database_url=database,
        work_dir=data / "work",
        workers=opts.workers,
        worker_id=opts.worker_id or f"{socket.gethostname()}:{data}",
        max_bytes=opts.max_bytes,
        # Jobs running side by side share the cores instead of each claiming all of them.
        blur=dataclasses.replace(opts.blur, threads=max(1, (os.cpu_count() or 1) // opts.workers)),
    )


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_address(opts: ServeOptions) -> None:
    """Refuse to expose an unauthenticated API beyond this machine unless told to."""
    if is_loopback(opts.host) or opts.insecure:
        return
    if not opts.api_keys:
        raise OptionError(
            f"refusing to listen on {opts.host} without API keys: pass --api-key (or --api-keys-file), "
            "or --insecure to accept anyone on the network"
        )
    if opts.aws_keys is None:
        raise OptionError(
            f"refusing to serve the face-detection API unsigned (--no-aws-auth) on {opts.host}: "
            "give it --access-key and --secret-key, or pass --insecure"
        )


def serve(opts: ServeOptions) -> None:
    import uvicorn

    from veil.api import Service, create_app
    from veil.api.rekognition import RekognitionConfig

    check_listen_address(opts)
    config = service_config(opts)
    launch(config)
    interval = opts.poll_interval
    if interval is None:
        interval = 1.0 if isinstance(config.input, LocalStorage) else 5.0
    settle = isinstance(config.input, LocalStorage)
    poller = Poller(config.input, submit, interval, settle=settle) if interval > 0 else None
    if poller:
        poller.start()
    rekognition = RekognitionConfig(
        secrets=opts.aws_keys,
        notification_webhook=opts.notification_webhook,
        max_face_jobs=opts.max_face_jobs,
        rate_limit=opts.rate_limit,
    )
    app = create_app(
        Service(config=config, submit=submit, api_keys=opts.api_keys, rekognition=rekognition)
    )
    log.warning(
        "veil serve: %s -> %s, jobs in %s, API on http://%s:%d",
        config.input.url,
        config.output.url,
        config.database_url.split("@")[-1],
        opts.host,
        opts.port,
    )
    try:
        uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning")
    finally:
        if poller:
            poller.stop()
        shutdown()


def work(opts: ServeOptions) -> None:
    """A worker process: runs queued jobs (and recovers its own) until interrupted."""
    if not (opts.database or "").startswith("postgresql"):
        raise OptionError(
            "veil worker needs --database postgresql://...: a SQLite file serves one process, "
            "so extra workers can only share jobs through PostgreSQL"
        )
    launch(service_config(opts))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()
