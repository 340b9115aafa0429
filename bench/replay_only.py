"""Replay-only speed (issue 21: the rules moved to check/rules/ must not slow the replay).

Feeds pre-decoded events of the bench/gen_jsonl.py pattern to `Replay.feed` and prints the best of
three runs in events per CPU second (process time, so that other processes on a shared machine
weigh less than on wall time). Compare two checkouts by running it with each on PYTHONPATH:

    .venv/bin/python bench/replay_only.py 200000
    PYTHONPATH=/path/to/other/checkout/checker .venv/bin/python bench/replay_only.py 200000
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_jsonl import rounds  # noqa: E402

from kvclaims import spec as spec_mod  # noqa: E402
from kvclaims.check.replay import Replay  # noqa: E402
from kvclaims.trace.model import Event  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    spec = spec_mod.load()
    events = []
    for i, line in enumerate(rounds(n)):
        if i >= n:
            break
        d = json.loads(line)
        kind = d.pop("event")
        events.append(Event(kind, d, i + 1))
    best = 0.0
    verdict = None
    for _ in range(3):
        rp = Replay(spec, "-")
        t = time.process_time()
        for e in events:
            rp.feed(e)
        verdict = rp.finish().verdict
        best = max(best, len(events) / (time.process_time() - t))
    print(f"replay only: {len(events)} events, best of 3: {best:,.0f} events per CPU second, "
          f"verdict {verdict}")


if __name__ == "__main__":
    main()
