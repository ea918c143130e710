"""Start and stop the real service (`tocsin serve`), the scratch database, and RSS / CPU sampling.

Run as ``python -m bench.server --host H --port P [--reuse-port]`` it is a stand-in for ``tocsin serve``
that calls the same ``app.cli.cmd_serve``; it is used only when ``tocsin serve --help`` itself fails
(see ``serve_command``), so the benchmark still measures the service when the CLI's argument parser breaks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx
import orjson
import psutil
import psycopg
from sqlalchemy.engine import make_url

from bench.common import BENCH_DATABASE, ROOT, TOKEN, progress

BIN = Path(sys.executable).parent


def libpq_params(url: str) -> dict[str, str | int]:
    """psycopg.connect() keywords for a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url)
    params: dict[str, str | int] = {"dbname": parsed.database or "postgres"}
    for key, value in (
        ("host", parsed.host),
        ("port", parsed.port),
        ("user", parsed.username),
        ("password", parsed.password),
    ):
        if value is not None:
            params[key] = value
    return params


def pg_connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(**libpq_params(url), autocommit=autocommit)  # type: ignore[arg-type]


def recreate_database(admin_url: str, bench_url: str) -> None:
    """Drop and create the scratch database; refuses any other name, never touches other databases."""
    name = make_url(bench_url).database
    if name != BENCH_DATABASE:
        raise RuntimeError(f"refusing to recreate {name!r}: only {BENCH_DATABASE!r} is the benchmark's")
    with pg_connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, bench_url: str) -> None:
    name = make_url(bench_url).database
    if name == BENCH_DATABASE:
        with pg_connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@cache
def serve_command() -> tuple[list[str], str]:
    """The command that starts one service process, and a note when it is not plain `tocsin serve`."""
    tocsin = str(BIN / "tocsin")
    probe = subprocess.run([tocsin, "serve", "--help"], capture_output=True, text=True, cwd=ROOT, check=False)
    if probe.returncode == 0 and "--reuse-port" in probe.stdout:
        return [tocsin, "serve"], ""
    reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
    note = (
        f"`tocsin serve --help` fails ({reason}); started app.cli.cmd_serve through `python -m bench.server`"
    )
    return [sys.executable, "-m", "bench.server"], note


@dataclass(slots=True)
class ProcessStats:
    peak_rss: int = 0
    cpu_seconds: float = 0.0


@dataclass
class Service:
    """N `tocsin serve` processes on one port (SO_REUSEPORT when N > 1), over one database."""

    database_url: str
    processes: int = 1
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    app_dir: Path = field(default_factory=lambda: Path(os.environ.get("BENCH_APP_DIR") or ROOT))
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tocsin-bench-logs-")))
    _sampler: RssSampler | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TOCSIN_DATABASE_URL=self.database_url,
            TOCSIN_BOOTSTRAP_TOKEN=TOKEN,
            TOCSIN_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        if self.app_dir != ROOT:
            env["PYTHONPATH"] = str(self.app_dir)
        return env

    def start(self) -> Service:
        command, _ = serve_command()
        if self.app_dir != ROOT:  # another checkout (BENCH_APP_DIR), run from its own source tree
            command = [sys.executable, "-m", "app.cli", "serve"]
        args = ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.processes > 1:
            args.append("--reuse-port")
        for index in range(self.processes):
            # The first process runs the migrations; the others start once it answers.
            log = (self.log_dir / f"serve-{index}.log").open("wb")
            proc = subprocess.Popen(
                [*command, *args], cwd=self.app_dir, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
            self.procs.append(proc)
            self._wait_ready(proc, index)
        self._sampler = RssSampler(self.pids)
        self._sampler.start()
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], index: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"service process exited with {proc.returncode}:\n{self.log_tail(index)}")
            if self._process_listens(proc.pid):
                try:
                    if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"service not ready after {timeout:.0f}s:\n{self.log_tail(index)}")

    def _process_listens(self, pid: int) -> bool:
        try:
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port
                for c in psutil.Process(pid).net_connections(kind="tcp")
            )
        except psutil.Error:
            return False

    def log_tail(self, index: int = 0, lines: int = 20) -> str:
        path = self.log_dir / f"serve-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def server_errors(self) -> dict[str, int]:
        """Distinct errors the processes logged (the exception's last line), with their counts."""
        counts: dict[str, int] = {}
        for path in sorted(self.log_dir.glob("serve-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if entry.get("level") not in ("error", "critical"):
                    continue
                exc_lines = [part for part in str(entry.get("exc") or "").splitlines() if part.strip()]
                detail = next(
                    (
                        part
                        for part in reversed(exc_lines)
                        if not part.startswith(("  ", "HINT", "CONTEXT", "DETAIL", "Process "))
                    ),
                    "",
                )
                key = (detail or str(entry.get("msg", "?")))[:160]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def connections_per_process(self) -> dict[int, int]:
        """Established client connections held by each service process (to check the kernel's spread)."""
        counts = {}
        for pid in self.pids:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                conns = []
            counts[pid] = sum(
                1
                for c in conns
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
            )
        return counts

    def stats(self) -> dict[int, ProcessStats]:
        assert self._sampler is not None
        return self._sampler.snapshot()

    def reset_stats(self) -> None:
        assert self._sampler is not None
        self._sampler.reset()

    def database_cpu(self) -> float:
        assert self._sampler is not None
        return self._sampler.database_cpu()

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RssSampler(threading.Thread):
    """Samples the RSS of each process every 100 ms; peaks and CPU time since the last reset."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._peaks: dict[int, int] = {}
        self._cpu0: dict[int, float] = {}
        self._db_cpu0: dict[int, float] = {}
        self.reset()

    def _cpu(self, proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return 0.0

    def reset(self) -> None:
        with self._lock:
            self._peaks = dict.fromkeys(self.procs, 0)
            self._cpu0 = {pid: self._cpu(proc) for pid, proc in self.procs.items()}
            self._db_cpu0 = {pid: self._cpu(proc) for pid, proc in _db_backends().items()}
        self._sample()

    def database_cpu(self) -> float:
        """CPU seconds of the PostgreSQL backends serving the scratch database since the last reset."""
        total = 0.0
        for pid, proc in _db_backends().items():
            total += self._cpu(proc) - self._db_cpu0.get(pid, 0.0)
        return total

    def _sample(self) -> None:
        for pid, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            with self._lock:
                self._peaks[pid] = max(self._peaks.get(pid, 0), rss)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def snapshot(self) -> dict[int, ProcessStats]:
        self._sample()
        with self._lock:
            return {
                pid: ProcessStats(self._peaks[pid], self._cpu(proc) - self._cpu0[pid])
                for pid, proc in self.procs.items()
            }

    def stop(self) -> None:
        self._halt.set()


def _db_backends() -> dict[int, psutil.Process]:
    """PostgreSQL backend processes connected to the scratch database (same machine only)."""
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and cmdline[0].startswith("postgres: ") and f" {BENCH_DATABASE} " in cmdline[0]:
            found[proc.pid] = proc
    return found


def start_service(database_url: str, processes: int) -> Service:
    progress(f"  starting {processes} service process(es) on {make_url(database_url).get_backend_name()}")
    return Service(database_url, processes).start()


def _main() -> int:
    """`tocsin serve` without the CLI's argument parser (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="bench.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args()
    from app.cli import cmd_serve

    return cmd_serve(args)


if __name__ == "__main__":
    raise SystemExit(_main())
