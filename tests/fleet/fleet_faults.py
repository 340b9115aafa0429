"""Deciders with an injected fault, for the fleet tests: each behaves as THE decision path
except on a file whose name contains its marker. Importable by name, so spawned workers and Ray
workers run them (they are passed as `decide`)."""

from __future__ import annotations

import os
import signal
import time

from kvclaims.run import decide_path

CRASH, HANG, RAISE = "CRASH", "HANG", "RAISE"


def _marked(path: str, marker: str) -> bool:
    return marker in os.path.basename(path)


def crash(path, spec, options):
    """The worker process is killed (as the kernel's out-of-memory killer would)."""
    if _marked(path, CRASH):
        os.kill(os.getpid(), signal.SIGKILL)
    return decide_path(path, spec, options)


def hang(path, spec, options):
    """The decision never ends (a pathological input)."""
    if _marked(path, HANG):
        time.sleep(3600)
    return decide_path(path, spec, options)


def defect(path, spec, options):
    """A Python exception escapes the decision (a defect of kvclaims)."""
    if _marked(path, RAISE):
        raise RuntimeError("injected defect")
    return decide_path(path, spec, options)


def shuffled(path, spec, options):
    """Decides as usual after a delay drawn from the file name, so workers finish out of
    order."""
    time.sleep((sum(map(ord, os.path.basename(path))) % 7) / 100)
    return decide_path(path, spec, options)
