"""How the `kvclaims` process ends, for every command alike (README.md "Exit codes").

Decides, at the top level only (kvclaims.cli.main), what a command's way of stopping means:

- its own exit code, also when its reader closed the pipe early (`kvclaims check T | head -1`):
  stdout is guarded so a broken pipe silences the rest of the output instead of ending the
  command, which then finishes and exits with its verdict;
- Ctrl-C: "interrupted; no result" on stderr, exit 130; SIGTERM: "terminated; no result", exit
  143 (128 + the signal); a command that has a result to give first (watch) handles them itself.
  SIGTERM is raised as `Terminated`, a KeyboardInterrupt, so every clean-up written for Ctrl-C
  also runs for it;
- a user's mistake the command did not catch: a path that is missing, a directory, not a
  directory, unwritable or already there (OSError with a file name), or an optional feature
  whose extra is not installed: one line, exit 2;
- anything else is a defect of kvclaims: "internal error", with where to report it, exit 2.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_INPUT = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # the same as kvclaims.cli.EXIT_INTERRUPTED
EXIT_TERMINATED = 128 + signal.SIGTERM
REPORT = ("a defect of kvclaims: please report it with the command line; KVCLAIMS_DEBUG=1 shows "
          "the traceback")

# Optional features: the module a command imports -> (its distribution, kvclaims's extra).
# tests/test_exits.py checks this table against pyproject.toml's optional dependencies.
OPTIONAL: dict[str, tuple[str, str]] = {
    "zmq": ("pyzmq", "vllm"),
    "ray": ("ray", "ray"),
    "matplotlib": ("matplotlib", "plot"),
    "nats": ("nats-py", "nats"),
    "fsspec": ("fsspec", "urls"),  # traces named by URL (kvclaims.trace.urls says it itself)
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so the same clean-up runs; it exits 143, not 130."""


RETRY_SECONDS = 0.5


def _on_signal(signum: int, frame: Any) -> NoReturn:
    """Raise the interrupt, and raise it again every RETRY_SECONDS until it ends the command:
    Python drops an exception raised where none may escape (a garbage-collector callback, a
    __del__), which would otherwise leave Ctrl-C or SIGTERM without effect."""
    signal.signal(signal.SIGALRM, lambda _s, f: _on_signal(signum, f))
    signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS, RETRY_SECONDS)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _PipeGuard(io.TextIOBase):
    """A text stream that forwards to `stream` until its reader goes away, then to nowhere.

    On the first broken pipe the file descriptor is pointed at /dev/null, so the interpreter's
    final flush cannot fail either; `broken` records that it happened."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def _silence(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors

    @property
    def buffer(self) -> Any:
        return _BufferGuard(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _BufferGuard:
    """The binary side of a _PipeGuard (`sys.stdout.buffer`), silenced together with it."""

    def __init__(self, guard: _PipeGuard) -> None:
        self._guard = guard

    def write(self, data: bytes) -> int:
        g = self._guard
        if not g.broken:
            try:
                g._stream.flush()
                return g._stream.buffer.write(data)
            except BrokenPipeError:
                g._silence()
        return len(data)

    def flush(self) -> None:
        self._guard.flush()
        if not self._guard.broken:
            try:
                self._guard._stream.buffer.flush()
            except BrokenPipeError:
                self._guard._silence()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guard._stream.buffer, name)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The one-line hint for an optional feature whose module is not installed, else None."""
    top = (err.name or "").split(".")[0]
    if top not in OPTIONAL:
        return None
    dist, extra = OPTIONAL[top]
    return (f"this needs {dist}, which is not installed: "
            f"pip install 'kvclaims[{extra}]'")


def user_os_error(err: OSError) -> str | None:
    """One line for an OSError about a named path (a user's mistake), else None."""
    if err.filename is None or isinstance(err, BrokenPipeError):
        return None
    what = err.strerror or type(err).__name__
    if err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}: {what}"
    return f"{err.filename}: {what}"


def run(command: Callable[[], Any], prog: str = "kvclaims") -> NoReturn:
    """Run the command line `command` (which raises SystemExit with its code) and exit."""
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM) if _main_thread() else ()
    previous = {sig: signal.signal(sig, _on_signal) for sig in handled[:2]}
    previous[signal.SIGALRM] = signal.getsignal(signal.SIGALRM) if handled else None
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(unraisable)
    stdout = sys.stdout
    guard = _PipeGuard(stdout)
    sys.stdout = guard
    code: int | str | None
    try:
        command()
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:
        if handled:
            signal.setitimer(signal.ITIMER_REAL, 0)
        term = isinstance(e, Terminated)
        _say(f"{prog}: {'terminated' if term else 'interrupted'}; no result")
        code = EXIT_TERMINATED if term else EXIT_INTERRUPTED
    except (ModuleNotFoundError, OSError) as e:
        line = missing_extra(e) if isinstance(e, ModuleNotFoundError) else user_os_error(e)
        if line is None:
            code = _internal(prog, e)
        else:
            _say(f"{prog}: {line}")
            code = EXIT_INPUT
    except Exception as e:  # noqa: BLE001 - the one place defects are reported
        code = _internal(prog, e)
    guard.flush()
    sys.stdout = stdout
    sys.unraisablehook = unraisable
    for sig, handler in previous.items():
        if handler is not None:
            signal.signal(sig, handler)
    sys.exit(code)


def _quiet_interrupts(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An interrupt dropped where no exception may escape is not news: _on_signal raises it
    again; other unraisable exceptions still reach `hook`."""

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    return quiet


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _internal(prog: str, err: Exception) -> int:
    if os.environ.get("KVCLAIMS_DEBUG"):
        raise err
    _say(f"{prog}: internal error: {type(err).__name__}: {err} ({REPORT})")
    return EXIT_INPUT
