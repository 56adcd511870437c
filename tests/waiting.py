"""Waiting in tests for what a run in another thread prints."""
import time


def wait_for_stderr(capsys, text: str, thread, timeout: float = 120) -> str:
    """Collect stderr until it holds `text`, the thread ends or `timeout` passes; returns what was collected."""
    err, deadline = "", time.monotonic() + timeout
    while text not in err and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
        err += capsys.readouterr().err
    return err
