"""Runs in another thread in tests: started with their errors kept, and waited for by what they print."""
import threading
import time


def wait_for_stderr(capsys, text: str, thread, timeout: float = 120) -> str:
    """Collect stderr until it holds `text`, the thread ends or `timeout` passes; returns what was collected."""
    err, deadline = "", time.monotonic() + timeout
    while text not in err and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
        err += capsys.readouterr().err
    return err


def start_thread(errors: list, fn, *args, **kwargs) -> threading.Thread:
    """fn(*args, **kwargs) started in a thread, its exception kept in `errors` for the test to assert on."""
    def target():
        try:
            fn(*args, **kwargs)
        except Exception as e:  # asserted by the caller
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    return thread
