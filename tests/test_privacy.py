"""No byte leaves the machine (issue 9): veil's own processes, run as a user runs them,
write nothing outside the files they are given and connect to nothing but loopback.

What the network tests see: every ``bind``/``connect``/``sendto`` of the process and
all its threads and children, native libraries included (ONNX Runtime's telemetry is
C++), where ``strace`` is installed and allowed to trace; without it, only the calls made
through Python's ``socket`` module (an audit hook loaded by ``sitecustomize``). The
HOME/TMPDIR checks catch native telemetry either way: it keeps its state in files.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from servers import free_port, server_process, wait_for

# Loaded by every Python process the test starts: records the socket calls Python makes.
AUDIT_HOOK = """
import os, sys

_log = os.environ["VEIL_TEST_SOCKET_LOG"]

def _audit(event, args):
    calls = ("socket.bind", "socket.connect", "socket.sendto")
    if event in calls and isinstance(args[-1], tuple):
        host, port = args[-1][:2]
    elif event == "socket.getaddrinfo":
        host, port = args[0], args[1]
    else:
        return
    with open(_log, "a") as log:
        log.write(f"{event[len('socket.'):]} {host} {port}\\n")

sys.addaudithook(_audit)
"""

# A system call of strace's log with an IPv4 or IPv6 socket address.
STRACE_CALL = re.compile(
    r"(bind|connect|sendto|sendmsg)\(.*?sin6?_port=htons\((\d+)\).*?"
    r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")'
)


RUNNING_AT_LEAST = 15.0
"""Seconds ``veil serve`` runs in the network test, whatever the job takes."""


def strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    done = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    return done.returncode == 0


class SocketWatch:
    """Runs commands so that every network address they reach is recorded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "hook").mkdir(parents=True)
        (folder / "hook" / "sitecustomize.py").write_text(AUDIT_HOOK)
        self.python_log = folder / "python-sockets.log"
        self.strace_log = folder / "strace.log"
        self.native = strace_works()

    def command(self, args: list[str]) -> list[str]:
        if not self.native:
            return args
        trace = ["strace", "-f", "-qq", "-e", "trace=bind,connect,sendto,sendmsg"]
        return [*trace, "-o", str(self.strace_log), *args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.folder / "hook"), base.get("PYTHONPATH")) if p)
        return {**base, "PYTHONPATH": path, "VEIL_TEST_SOCKET_LOG": str(self.python_log)}

    def calls(self) -> set[tuple[str, str, int]]:
        """Every (call, address or name, port) bound, connected, sent to or looked up."""
        found = set()
        if self.python_log.exists():
            for line in self.python_log.read_text().splitlines():
                call, host, port = line.split(" ", 2)
                found.add((call, host, int(port) if port.isdigit() else 0))
        if self.native:
            for call, port, ipv4, ipv6 in STRACE_CALL.findall(self.strace_log.read_text()):
                found.add((call, ipv4 or ipv6, int(port)))
        return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bare_env(home: Path, tmp: Path) -> dict[str, str]:
    """This environment with a fresh HOME and TMPDIR, and without the variables that
    would switch ONNX Runtime's telemetry off for us (veil must do it itself)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "ORT_DISABLE_TELEMETRY") and not k.startswith("XDG_")
    }
    return {**env, "HOME": str(home), "TMPDIR": str(tmp)}


def folders(tmp_path: Path, *names: str) -> list[Path]:
    made = [tmp_path / name for name in names]
    for folder in made:
        folder.mkdir()
    return made


def test_blur_leaves_home_and_tmpdir_empty(clip, tmp_path):
    home, tmp, work = folders(tmp_path, "home", "tmp", "work")
    shutil.copy(clip.path, work / "party.mp4")
    done = subprocess.run(
        [sys.executable, "-m", "veil.cli", "blur", "party.mp4"],
        cwd=work,
        env=bare_env(home, tmp),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(home.rglob("*")) == []
    assert list(tmp.rglob("*")) == []
    assert sorted(p.name for p in work.iterdir()) == ["party.blurred.mp4", "party.mp4"]


def test_blur_connects_nowhere(clip, tmp_path):
    home, tmp, work = folders(tmp_path, "home", "tmp", "work")
    watch = SocketWatch(tmp_path / "watch")
    shutil.copy(clip.path, work / "party.mp4")
    done = subprocess.run(
        watch.command([sys.executable, "-m", "veil.cli", "blur", "party.mp4"]),
        cwd=work,
        env=watch.env(bare_env(home, tmp)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (work / "party.blurred.mp4").exists()
    assert watch.calls() == set()


def test_serve_connects_only_to_loopback(clip, tmp_path):
    """A whole job through ``veil serve`` (folder buckets, SQLite): the server listens
    on loopback and reaches no other address."""
    server_process("veil serve")
    home, tmp, data = folders(tmp_path, "home", "tmp", "data")
    watch = SocketWatch(tmp_path / "watch")
    port = free_port()
    serve = [sys.executable, "-m", "veil.cli", "serve", "--data", str(data), "--port", str(port)]
    serve += ["--poll-interval", "0.3"]
    started = time.monotonic()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            watch.command(serve),
            env=watch.env(bare_env(home, tmp)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        (data / "input").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip.path, data / "input" / "party.mp4")
        wait_for(lambda: (data / "output" / "party.mp4").exists(), 120, "the job's output")
        # Background uploaders start late (ONNX Runtime's first looked its endpoint up
        # about 9 s after start): a short run would show nothing, so stay up that long.
        time.sleep(max(0.0, started + RUNNING_AT_LEAST - time.monotonic()))
    finally:
        stop(proc, watch.native)
    # uvicorn ends by raising the signal it stopped for again.
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    calls = watch.calls()
    assert ("bind", "127.0.0.1", port) in calls  # the watch sees the server itself
    assert {(call, host) for call, host, _ in calls if not is_loopback(host)} == set()
    assert list(home.rglob("*")) == []
    assert list(tmp.rglob("*")) == []


def stop(proc: subprocess.Popen[bytes], traced: bool) -> None:
    """SIGTERM to ``veil serve``. strace, while it writes its log to a file, ignores the
    signal: then it goes to the process strace started, and strace ends with it."""
    if proc.poll() is None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        os.kill(int(children.read_text().split()[0]) if traced else proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
