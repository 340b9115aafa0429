"""The report rendering curve and the explain curve (issue 20). Numbers, not tests.

`python bench/report_bench.py reports 1000 10000 100000` writes bench/gen_claims.py traces of N
violating claims (7 events each) and times, each in a fresh process, `kvclaims check --format F`
for text, json and junit, and `kvclaims explain --out X.html`, with the output's size.
`python bench/report_bench.py explain 1000 10000 100000 1000000` times `kvclaims explain` of the
churn trace (one claim, N events: bench/gen_claims.py --churn) as a whole (overview) and, from
10^4 events on, with a window of 10^4 events in its middle (every event drawn), with the page's
size. Traces go to bench/out/ (ignored by git). Prints one Markdown table row per run.
"""

from __future__ import annotations


import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
KV = str(Path(sys.executable).parent / "kvclaims")
HTML_MAX_CLAIMS = 20_000  # a page draws a lane per claim: 10^5 claims would be about 700 MB


def _run(args: list[str], stdout_path: Path) -> tuple[float, float, int]:
    """(CPU seconds of the child, wall seconds, output bytes). CPU time, not wall time: the
    machine is shared, and a busy neighbour stretches wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(stdout_path, "wb") as fh:
        res = subprocess.run([KV, *args], stdout=fh, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if res.returncode not in (0, 1):
        raise SystemExit(f"{args}: exit {res.returncode}: {res.stderr.decode()[:400]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, dt, stdout_path.stat().st_size


def _gen(flag: list[str], n: int, path: Path) -> None:
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_claims.py"), *flag, str(n),
                        str(path)], check=True)


def reports(sizes: list[int]) -> None:
    print("| claims | events | format | CPU s | wall s | output, KiB |")
    print("|---:|---:|---|---:|---:|---:|")
    for n in sizes:
        trace = OUT / f"claims-{n}.kvt"
        _gen([], n, trace)
        for fmt in ("text", "json", "junit"):
            cpu, dt, size = _run(["check", "--format", fmt, str(trace)], OUT / f"r.{fmt}")
            print(f"| {n:,} | {7 * n:,} | {fmt} | {cpu:.2f} | {dt:.2f} | {size / 1024:,.0f} |",
                  flush=True)
        if n > HTML_MAX_CLAIMS:
            print(f"| {n:,} | {7 * n:,} | html (explain) | - | - | not written (one lane per "
                  "claim: about 7 KB a claim) |", flush=True)
            continue
        page = OUT / "r.html"
        cpu, dt, _ = _run(["explain", str(trace), "--out", str(page)], OUT / "r.log")
        print(f"| {n:,} | {7 * n:,} | html (explain) | {cpu:.2f} | {dt:.2f} | "
              f"{page.stat().st_size / 1024:,.0f} |", flush=True)


def explain(sizes: list[int]) -> None:
    print("| events | window | CPU s | wall s | page, KiB | drawn |")
    print("|---:|---|---:|---:|---:|---|")
    for n in sizes:
        trace = OUT / f"churn-{n}.kvt"
        _gen(["--churn"], n, trace)
        runs = [("whole (overview)", [])]
        if n >= 10_000:
            mid = max(1, n // 2 - 5_000)
            runs.append((f"--from {mid} --to {mid + 9_999}",
                         ["--from", str(mid), "--to", str(mid + 9_999)]))
        for label, extra in runs:
            page = OUT / "e.html"
            cpu, dt, _ = _run(["explain", str(trace), "--out", str(page), *extra],
                              OUT / "e.log")
            text = page.read_text()
            drawn = "downsampled" if "downsampled:" in text else "every event"
            print(f"| {n:,} | {label} | {cpu:.2f} | {dt:.2f} | {page.stat().st_size / 1024:,.0f} | "
                  f"{drawn} |", flush=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    what, sizes = sys.argv[1], [int(x) for x in sys.argv[2:]]
    {"reports": reports, "explain": explain}[what](sizes)



if __name__ == "__main__":
    main()
