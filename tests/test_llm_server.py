"""The judge server's lifecycle pieces that need no llama.cpp: stopping a server a killed run left behind."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from synpref.llm import stop_stale_server

LOGGER = "synpref.llm.server"


def _sleeper(*argv: str, ignore_sigterm: bool = False) -> subprocess.Popen:
    """A process of ours that sleeps; extra argv words land in its command line (returned once they are there)."""
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_sigterm else ""
    code = ignore + "print('ready', flush=True); import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"  # its handlers are in place
    proc.stdout.close()
    return proc


def test_a_stale_judge_server_is_stopped_and_its_pid_file_removed(tmp_path, caplog):
    proc = _sleeper("synpref.llm._llama_server", "--port", "1")  # what JudgeServer starts
    pid_file = tmp_path / "judge_server.pid"
    pid_file.write_text(str(proc.pid))
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert stop_stale_server(pid_file) is True
        assert proc.wait(5) == -15  # SIGTERM
        assert not pid_file.exists() and f"stopped the judge server an earlier run left behind (pid {proc.pid})" in caplog.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stale_server_that_ignores_sigterm_is_killed(tmp_path, caplog):
    proc = _sleeper("synpref.llm._llama_server", ignore_sigterm=True)
    pid_file = tmp_path / "judge_server.pid"
    pid_file.write_text(str(proc.pid))
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert stop_stale_server(pid_file, wait=0.5) is True
        assert proc.wait(5) == -9 and f"(pid {proc.pid}) ignored SIGTERM" in caplog.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_recycled_pid_is_left_alone_and_logged(tmp_path, caplog):
    proc = _sleeper()  # some other program now holds the pid
    pid_file = tmp_path / "judge_server.pid"
    pid_file.write_text(str(proc.pid))
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert stop_stale_server(pid_file) is False
        assert proc.poll() is None and not pid_file.exists()
        assert f"pid {proc.pid} from {pid_file} now belongs to another program" in caplog.text and "left running" in caplog.text
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("content", ["", "not a pid", "12ab"])
def test_an_unreadable_pid_file_is_logged_and_removed(tmp_path, caplog, content):
    pid_file = tmp_path / "judge_server.pid"
    pid_file.write_text(content)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert stop_stale_server(pid_file) is False
    assert not pid_file.exists()
    assert f"the judge server pid file {pid_file} cannot be read" in caplog.text and "stopped by hand" in caplog.text


def test_a_server_that_already_exited_is_logged(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid_file = tmp_path / "judge_server.pid"
    pid_file.write_text(str(proc.pid))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert stop_stale_server(pid_file) is False
    assert not pid_file.exists() and f"(pid {proc.pid} in {pid_file}) is no longer running" in caplog.text
    assert stop_stale_server(pid_file) is False  # no pid file: nothing to do
