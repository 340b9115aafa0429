"""What the kvclaims pytest plug-in adds to every pytest start when its fixtures are unused.

`python bench/startup.py [--runs N]` measures, each in N fresh processes (median):

- plugin import: `import kvclaims.pytest_plugin` after pytest is imported (what the pytest11
  entry point makes pytest do), timed with perf_counter inside the process;
- pytest start: `pytest --collect-only -q` over an empty folder, with the plug-in (as installed)
  and with `-p no:kvclaims`; the difference is the plug-in's share of a start, but on a shared
  machine it is within the noise of a ~0.3 s start, so the first figure is the one to read.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

IMPORT = ("import time, pytest; t = time.perf_counter(); import kvclaims.pytest_plugin; "
          "print(time.perf_counter() - t)")


def _plugin_import(runs: int) -> float:
    return statistics.median(float(subprocess.run([sys.executable, "-c", IMPORT], check=True,
                                                  capture_output=True, text=True).stdout)
                             for _ in range(runs))


def _pytest_starts(runs: int) -> tuple[float, float]:
    """Median start with and without the plug-in, the two interleaved so load hits both."""
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(runs):
            for plugin in (True, False):
                t = time.perf_counter()
                off = () if plugin else ("-p", "no:kvclaims")
                subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                "-p", "no:cacheprovider", *off, empty], capture_output=True,
                               cwd=empty)
                times[plugin].append(time.perf_counter() - t)
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    runs = ap.parse_args().runs
    imp = _plugin_import(runs)
    with_plugin, without = _pytest_starts(runs)
    print(f"plugin import (median of {runs}): {imp * 1000:.2f} ms")
    print(f"pytest start with the plug-in: {with_plugin * 1000:.0f} ms, without: "
          f"{without * 1000:.0f} ms, difference {1000 * (with_plugin - without):+.0f} ms")


if __name__ == "__main__":
    main()
