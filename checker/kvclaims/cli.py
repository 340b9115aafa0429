"""The `kvclaims` command line: check traces, convert them, render the spec.

Exit codes (ARCHITECTURE.md): 0 conformant, 1 violation or failed gate, 2 usage or input error,
3 inconclusive; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Never a Python traceback:
pipes, signals, a user's mistake and a real defect end as kvclaims.exits decides (set
KVCLAIMS_DEBUG=1 to see a defect's traceback).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, NoReturn

import click

from kvclaims import spec as spec_mod

EXIT_OK, EXIT_VIOLATION, EXIT_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): stopped, no result presented (kvclaims.solver)


def _exit_code(reports: list[Any]) -> int:
    from kvclaims.run import exit_code

    return exit_code(reports)


def decision_options(f: Any) -> Any:
    """The options of every command that shows a verdict (check, explain, shrink), folded into
    ONE kvclaims.run.Options passed as `options`: the commands decide with the same options
    through the same function. A new decision option (e.g. a deferral bound) is one Options
    field and one flag here whose parameter has the field's name; nothing else changes."""
    flags = [
        click.option("--input-format", type=click.Choice(["kvt", "jsonl", "vllm"]),
                     default=None,
                     help="Override format detection (vllm: a recorded KV event stream)."),
        click.option("--claims", default=None, type=click.Path(dir_okay=False),
                     metavar="MANIFEST.toml",
                     help="The claim manifest a recorded KV event stream (.kvbatches) is joined "
                          "with."),
        click.option("--reorder-window", type=click.IntRange(min=0), default=32,
                     show_default=True,
                     help="KV event streams: batches a late batch may trail by before it is a "
                          "gap (use the value the stream was watched with)."),
        click.option("--max-defer-steps", type=click.IntRange(min=0), default=None,
                     metavar="N",
                     help="A deferral bound of N scheduler steps (R-progress), checked beside "
                          "every bound the trace declares: a bound can tighten a runtime's "
                          "promise, never loosen it."),
        click.option("--max-defer-ns", type=click.IntRange(min=0), default=None, metavar="NS",
                     help="A deferral bound of NS nanoseconds (R-progress), checked beside "
                          "every declared bound."),
        click.option("--engine", type=click.Choice(["auto", "replay", "z3"]), default="auto",
                     show_default=True,
                     help="auto: the replay for totally ordered traces, the Z3 engine when the "
                          "trace has unordered parts; replay: the written order only (unordered "
                          "parts make it inconclusive); z3: always the Z3 engine."),
        click.option("--skew", "skews", multiple=True, metavar="A:B:NS",
                     help="Events of sources A and B (field `source`) whose times differ by at "
                          "most NS nanoseconds may be in either order."),
        click.option("--require", "require", multiple=True, metavar="MODE",
                     help="Also list the rules of MODE's bundle (or the reference gate's "
                          "requirements) the trace does not positively witness; a missing one "
                          "fails the check."),
        click.option("--solver-timeout", type=click.FloatRange(min=0.001), default=60.0,
                     show_default=True,
                     help="Seconds per solver question; a timeout is inconclusive."),
        click.option("--max-line-bytes", type=click.IntRange(min=1), default=1 << 20,
                     show_default=True, help="Longest accepted input line."),
        click.option("--max-claims", type=click.IntRange(min=1), default=100_000,
                     show_default=True, help="Most claims one trace may name."),
    ]

    @functools.wraps(f)
    def wrapper(**kw: Any) -> Any:
        kw["options"] = _options({name: kw.pop(name) for name in names})
        return f(**kw)

    before = len(getattr(wrapper, "__click_params__", ()))
    for flag in reversed(flags):
        wrapper = flag(wrapper)
    names = [p.name for p in wrapper.__click_params__[before:]]  # type: ignore[attr-defined]
    return wrapper


def _options(values: dict[str, Any]) -> Any:
    """The decision options, each checked: an unknown gate or a malformed skew is a usage
    error naming the valid choices. A flag named as an Options field is passed through as is."""
    from kvclaims.check import gate as gates
    from kvclaims.run import Options, defer_bounds_option
    from kvclaims.trace.partial_input import parse_skew_option

    spec = spec_mod.load()
    values = dict(values)
    require = values["require"]
    known = gates.gate_names(spec)
    for name in require:
        if spec.canonical_mode(name) is None and name not in spec.gates:
            raise click.UsageError(f"--require {name}: not a mode or gate; one of "
                                   f"{', '.join(known)}")
    try:
        parsed = tuple(parse_skew_option(x) for x in values.pop("skews"))
    except ValueError as err:
        raise click.UsageError(f"--skew: {err}") from None
    if len({s.sources for s in parsed}) != len(parsed):
        raise click.UsageError("--skew: a pair of sources is given two skews")
    timeout_ms = max(1, int(values.pop("solver_timeout") * 1000))
    bounds = defer_bounds_option(values.pop("max_defer_steps"), values.pop("max_defer_ns"))
    return Options(**values, skews=parsed, solver_timeout_ms=timeout_ms, defer_bounds=bounds)


def _check_skew_sources(options: Any, reports: list[Any]) -> None:
    """A --skew naming a source none of the traces has is a usage error (not a silent no-op)."""
    from kvclaims.run import skew_sources_missing

    if not options.skews or any(r.error is not None for r in reports):
        return
    missing, have = skew_sources_missing(options, reports)
    if missing:
        raise click.UsageError(f"--skew: no trace has source {', '.join(missing)}; the sources "
                               f"the traces have: {', '.join(have) or 'none'}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvclaims")
def cli() -> None:
    """kvclaims: check that serving runtimes honour resident KV claims.

    The model as data (events, rules with their sentences, modes and their bundles): `kvclaims
    spec`. Each command: `kvclaims COMMAND --help`."""


def _write_witnesses(path: str, rep: Any, spec: Any, options: Any, prefix: str,
                     err: Any) -> None:
    """The Z3 engine's witness orders as whole .kvt traces that re-check as written."""
    from kvclaims.check.partial import witnesses
    from kvclaims.trace.partial_input import read_partial
    from kvclaims.trace.write import write_kvt

    if "violating" not in rep.extra and "conforming" not in rep.extra:
        err.print(f"--witness: {path} has no unordered parts, so no orders to write")
        return
    if path == "-":
        raise click.UsageError("--witness needs a file, not standard input")
    trace = read_partial(path, path, spec, options.input_format, options.skews,
                         max_line_bytes=options.max_line_bytes)
    for name, events in witnesses(spec, rep, trace.events, spec.order.batch_fields).items():
        out = f"{prefix}.{name}.kvt"
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(f"# {name} order of {path} found by the Z3 engine (docs/partial.md)\n")
            write_kvt(events, fh, spec)
        err.print(f"wrote {out}")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True, help="Report format.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: on a terminal, for large inputs).")
@click.option("--witness", "witness", default=None, metavar="PREFIX",
              help="Write the violating and conforming orders the Z3 engine found as "
                   "PREFIX.violating.kvt and PREFIX.conforming.kvt.")
@click.option("--width", type=click.IntRange(min=20), default=None, metavar="N",
              help="Wrap the text report at N columns (default: the terminal's width; off a "
                   "terminal lines are written whole). Lines are wrapped, never cut.")
@decision_options
def check(files: tuple[str, ...], fmt: str, progress: bool | None, witness: str | None,
          width: int | None, options: Any) -> None:
    """Check trace FILES (or - for standard input) against the resident KV claim model."""
    from rich.console import Console

    from kvclaims.report import json as json_report
    from kvclaims.report import junit, text
    from kvclaims.run import decide_path

    spec = spec_mod.load()
    if witness is not None and len(files) != 1:
        raise click.UsageError("--witness writes one trace's orders: give one FILE")
    out = text.console_for(width)
    err = Console(stderr=True, soft_wrap=True)
    reports = []
    for path in files:
        show = progress
        if show is None:
            show = err.is_terminal and path != "-" and os.path.exists(path) and \
                os.path.getsize(path) > (8 << 20)
        if show:
            with err.status(f"checking {path}") as status:
                rep = decide_path(path, spec, options, progress=lambda n: status.update(
                    f"checking {path}: {n:,} events"))
        else:
            rep = decide_path(path, spec, options)
        reports.append(rep)
    # Usage is checked against what the traces hold before anything is printed.
    _check_skew_sources(options, reports)
    for path, rep in zip(files, reports):
        if witness is not None:
            _write_witnesses(path, rep, spec, options, witness, err)
        if fmt == "json":
            sys.stdout.write(json_report.render(rep) + "\n")
            sys.stdout.flush()
        elif fmt == "text":
            text.render(rep, spec, out)
    if fmt == "junit":
        sys.stdout.write(junit.render(reports))
    sys.exit(_exit_code(reports))


@cli.command()
@click.argument("file")
@click.option("--to", "to", type=click.Choice(["kvt", "jsonl"]), required=True,
              help="Output format.")
@click.option("-o", "--out", default=None, metavar="OUT",
              help="Write here, whole or not at all (default: standard output).")
@click.option("--input-format", type=click.Choice(["kvt", "jsonl"]), default=None)
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=1 << 20,
              show_default=True, help="Longest accepted input line.")
def convert(file: str, to: str, out: str | None, input_format: str | None,
            max_line_bytes: int) -> None:
    """Write FILE as .kvt or JSON Lines, with every declaration that can change its verdict.

    The whole input is read and accepted before anything is written; exit 2 with nothing written
    on an input error or when the target cannot express a declaration of FILE (JSON Lines has no
    skew declaration). With -o the file appears whole or not at all.
    """
    from kvclaims.trace.convert import Inexpressible, convert as to_text
    from kvclaims.trace.model import InputError
    from kvclaims.trace.partial_input import read_partial

    spec = spec_mod.load()
    label = "<stdin>" if file == "-" else file
    try:
        source = sys.stdin.buffer if file == "-" else open(file, "rb")
    except OSError as e:
        click.echo(f"{file}: error: cannot open: {e.strerror}", err=True)
        sys.exit(EXIT_INPUT)
    try:
        trace = read_partial(source, label, spec, input_format,
                             max_line_bytes=max_line_bytes)
        text_out = to_text(trace, to, spec)
    except InputError as e:
        click.echo(f"{e.file}:{e.line}:{e.column}: error: {e.message}", err=True)
        sys.exit(EXIT_INPUT)
    except UnicodeDecodeError as e:
        click.echo(f"{label}: error: not UTF-8 text: {e.reason}", err=True)
        sys.exit(EXIT_INPUT)
    except Inexpressible as e:
        click.echo(f"{label}: error: cannot convert to {to}: {e}", err=True)
        sys.exit(EXIT_INPUT)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if out is None:
        sys.stdout.write(text_out)
        sys.stdout.flush()
        return
    try:
        _write_whole(out, text_out)
    except OSError as e:
        click.echo(f"{out}: error: cannot write: {e.strerror}", err=True)
        sys.exit(EXIT_INPUT)


def _write_whole(path: str, text: str) -> None:
    """Write `text` to `path` atomically: a temporary file beside it, renamed over it."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kvclaims-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@cli.command()
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Also write every litmus trace (.kvt) and expected.json into DIR.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def litmus(out_dir: str | None, fmt: str) -> None:
    """Run L1-L7, C1 and the capacity sweep of the model through the MicroRuntime and check them.

    Prints a matrix (case, policy, expected, observed, verdict); exit 1 on any disagreement.
    """
    from kvclaims.litmus import litmus_command

    sys.exit(litmus_command(out_dir, fmt))


@cli.command()
@click.argument("trace")
@click.option("--claim", default=None, help="Draw only this claim's lane.")
@click.option("--out", required=True, metavar="FILE.png|FILE.svg|FILE.html",
              help="Output picture; the suffix picks the format.")
@click.option("--from", "start", default=None, metavar="N|TIME",
              help="Draw from event N (1-based, as reports number events) or from a time since "
                   "the first event (250us, 1.5ms, 2s).")
@click.option("--to", "end", default=None, metavar="N|TIME",
              help="Draw up to event N or a time since the first event.")
@click.option("--around", default=None, metavar="RULE|N",
              help="Draw the 100 events either side of the first finding of RULE (e.g. "
                   "R-hard or hard) or of event N.")
@decision_options
def explain(trace: str, claim: str | None, out: str, start: str | None, end: str | None,
            around: str | None, options: Any) -> None:
    """Draw what happened to the pool and to each claim in TRACE (- for standard input),
    findings pinned at their events. The HTML page zooms and pans.

    The verdict drawn is the one `kvclaims check` decides with the same options."""
    from kvclaims.explain import explain_command

    sys.exit(explain_command(trace, claim, out, options.input_format, options=options,
                             start=start, end=end, around=around))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text",
              show_default=True)
@click.option("--verify-anchors", is_flag=True,
              help="Check every source anchor against an installed package or --source tree; "
                   "anchors it could not check are listed and make the result inconclusive "
                   "(exit 3).")
@click.option("--source", type=click.Path(exists=True, file_okay=False), default=None,
              help="A source tree or site-packages directory to verify anchors against.")
def lower(fmt: str, verify_anchors: bool, source: str | None) -> None:
    """The runtime x mode lowering table, fail-closed, with its deciding evidence."""
    from kvclaims.lower.commands import lower_command

    sys.exit(lower_command(fmt, verify_anchors, source))


@cli.command()
@click.argument("path", type=click.Path(exists=True))
def prove(path: str) -> None:
    """Check that every bad lowering in PATH (a file or directory) is rejected, with witnesses."""
    from kvclaims.lower.commands import prove_command

    sys.exit(prove_command(path))


@cli.command()
@click.option("--runtime", required=True, metavar="RUNTIME",
              help="micro:<policy>[,param=v][+fault] | vllm:<stock|plugin> | kvrm | "
                   "py:<module>:<factory>")
@click.option("--examples", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", default="fuzz-out", show_default=True, metavar="DIR",
              help="Where minimal traces, workloads and reproduction commands are written.")
@click.option("--max-shrinks", type=click.IntRange(min=0), default=None)
@click.option("--replay", default=None, metavar="WORKLOAD.json",
              help="Re-run one saved workload instead of searching.")
def fuzz(runtime: str, examples: int, seed: int, out_dir: str, max_shrinks: int | None,
         replay: str | None) -> None:
    """Search generated workloads for rule failures; write minimal traces to DIR."""
    from kvclaims.fuzz.driver import fuzz_command, replay_command

    if replay is not None:
        sys.exit(replay_command(runtime, replay))
    sys.exit(fuzz_command(runtime, examples, seed, out_dir, max_shrinks))


@cli.command()
@click.argument("endpoint")
@click.option("--replay", default=None, metavar="ENDPOINT",
              help="vLLM's replay socket, asked for batches missed in a sequence gap.")
@click.option("--claims", required=True, type=click.Path(exists=True, dir_okay=False),
              metavar="MANIFEST.toml", help="The claim manifest: each claim's block hashes.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
              show_default=True)
@click.option("--topic", default="", metavar="T",
              help="Only frames whose topic is exactly T (vLLM's kv_events_config topic).")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop after S seconds without a batch.")
@click.option("--max-batches", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N batches received.")
@click.option("--record", default=None, type=click.Path(dir_okay=False),
              metavar="FILE.kvbatches",
              help="Write the received frames with their sequence numbers (what `kvclaims check "
                   "FILE --claims M` reads), as they arrive.")
@click.option("--reorder-window", type=click.IntRange(min=0), default=32, show_default=True,
              help="Batches a late batch may trail by before its number is a gap.")
def watch(endpoint: str, replay: str | None, claims: str, fmt: str, topic: str,
          idle_timeout: float | None, max_batches: int | None, record: str | None,
          reorder_window: int) -> None:
    """Subscribe to a vLLM KV event stream (ZMQ) and decide the claims of MANIFEST.toml.

    Exit code: the verdict's (0 conformant, 1 violation, 3 inconclusive: nothing received,
    missed history or a gap), 2 on a usage or input error, 130/143 when interrupted by
    SIGINT/SIGTERM (the final report is printed first).
    """
    from kvclaims.watch import watch_command

    sys.exit(watch_command(endpoint, replay, claims, fmt, topic=topic, idle_timeout=idle_timeout,
                           max_batches=max_batches, record=record, window=reorder_window))


@cli.command("shrink")
@click.argument("trace")
@click.option("--rule", default=None, metavar="RULE",
              help="The rule the result must still violate (default: the rule of the trace's "
                   "first violation).")
@click.option("-o", "--out", default=None, metavar="OUT.kvt",
              help="Write the minimal trace here (default: standard output).")
@click.option("--max-checks", type=click.IntRange(min=1), default=None,
              help="Stop after this many engine calls (the result may then not be 1-minimal).")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: on a terminal).")
@decision_options
def shrink_cmd(trace: str, rule: str | None, out: str | None, max_checks: int | None,
               progress: bool | None, options: Any) -> None:
    """Shrink TRACE to a 1-minimal sub-trace (.kvt) that still violates RULE.

    Every candidate, the original and the written result are decided as `kvclaims check` decides
    them with the same options (engine, skew, gates). Exit 0 when shrunk and re-checked; 2 on a
    usage or input error or when TRACE does not violate the rule; 1 only if the written trace,
    read back, does not re-check as that violation; 3 when the engine could not decide a
    candidate (the solver answered unknown): no result.
    """
    import io
    import time

    from rich.console import Console

    from kvclaims import shrink as shrink_mod
    from kvclaims.check.replay import ClaimLimit
    from kvclaims.check.verdict import VIOLATION
    from kvclaims.run import decide_trace
    from kvclaims.trace import write
    from kvclaims.trace.model import InputError, PartialTrace
    from kvclaims.trace.partial_input import read_partial

    spec = spec_mod.load()
    if rule is not None and rule not in spec.rules:
        raise click.UsageError(f"--rule {rule}: not a rule id; one of {', '.join(spec.rules)}")

    def fail(message: str) -> NoReturn:
        click.echo(message, err=True)
        sys.exit(EXIT_INPUT)

    label = "<stdin>" if trace == "-" else trace
    try:
        fh = sys.stdin.buffer if trace == "-" else open(trace, "rb")
    except OSError as e:
        fail(f"{trace}: error: cannot open: {e.strerror}")
    try:
        # The trace's own skew declarations travel with it; --skew ones come from the options.
        whole = read_partial(fh, label, spec, options.input_format,
                             max_line_bytes=options.max_line_bytes)
    except InputError as e:
        fail(f"{e.file}:{e.line}:{e.column}: error: {e.message}")
    except UnicodeDecodeError as e:
        fail(f"{label}: error: not UTF-8 text: {e.reason}")
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    events = list(whole.events)
    own_skews = whole.skews

    def decide(candidate: Any) -> Any:
        return decide_trace(spec, PartialTrace(tuple(candidate), own_skews), options, label)

    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    show = err.is_terminal if progress is None else progress
    started = time.perf_counter()
    try:
        if show:
            with err.status(f"shrinking {label}") as status:
                def tick(checks: int, size: int) -> None:
                    status.update(f"shrinking {label}: {len(events):,} → {size:,} events, "
                                  f"{checks:,} checks")

                result = shrink_mod.shrink(events, spec, rule=rule, decide=decide,
                                           progress=tick, max_checks=max_checks)
        else:
            result = shrink_mod.shrink(events, spec, rule=rule, decide=decide,
                                       max_checks=max_checks)
    except shrink_mod.ShrinkInconclusive as e:
        click.echo(f"kvclaims shrink: {label}: inconclusive: {e}; no result", err=True)
        sys.exit(EXIT_INCONCLUSIVE)
    except shrink_mod.ShrinkError as e:
        fail(f"kvclaims shrink: {label}: {e}")
    except ClaimLimit as e:
        fail(f"{label}:{e.event.line}:{e.event.column}: error: {e}")
    seconds = time.perf_counter() - started

    buf = io.StringIO()
    buf.write(shrink_mod.provenance(result, label))
    try:
        write.write_kvt(result.events, buf, spec=spec, skews=own_skews)
    except ValueError as e:
        fail(f"kvclaims shrink: {label}: the kept events have no .kvt spelling: {e}")
    kvt = buf.getvalue()

    target = out or "<stdout>"
    back = read_partial(io.BytesIO(kvt.encode()), target, spec, "kvt")
    recheck = decide_trace(spec, back, options, target)
    rechecked = shrink_mod.violates(recheck, result.rule)
    if out is None:
        sys.stdout.write(kvt)
        sys.stdout.flush()
    else:
        try:
            _write_whole(out, kvt)
        except OSError as e:
            fail(f"{out}: error: cannot write: {e.strerror}")
    engine_note = "" if options.engine in ("auto", "replay") else f" ({options.engine} engine)"
    err.print(f"{label}: {result.rule}: {result.original_events} → {len(result.events)} events"
              f" (span {result.span}), {result.checks} checks{engine_note}, {seconds:.2f} s"
              f"{'' if result.minimal else ', not 1-minimal (--max-checks reached)'}")
    if not rechecked:
        err.print(f"{target}: re-check DIFFERS: no {result.rule} violation "
                  f"(verdict {recheck.result})")
        sys.exit(EXIT_VIOLATION)
    first = next(f for f in recheck.findings if f.status == VIOLATION and f.rule == result.rule)
    err.print(f"re-checked: {result.rule} at {target}:{first.line}:{first.column} "
              f"(verdict {recheck.result})")
    sys.exit(EXIT_OK)


@cli.command("spec")
@click.option("--format", "fmt", type=click.Choice(["md"]), default="md")
def spec_cmd(fmt: str) -> None:
    """Render the spec tables (the model as data) as Markdown (the repository's docs/spec.md)."""
    from kvclaims.docs import render_spec

    sys.stdout.write(render_spec(spec_mod.load()))


def _interrupted(e: BaseException) -> bool:
    """Whether `e` is Ctrl-C in disguise: raised while a ctypes call (Z3's API) converted its
    arguments, Python reports the KeyboardInterrupt as a ctypes.ArgumentError."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt) or (
                type(seen).__name__ == "ArgumentError" and "KeyboardInterrupt" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _click_main() -> None:
    """The click group, with click's own endings mapped to ours; kvclaims.exits does the rest
    (pipes, signals, a user's mistake, a defect)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, KeyboardInterrupt):  # click's spelling of Ctrl-C (or SIGTERM)
            raise cause from None
        click.echo("aborted", err=True)
        sys.exit(EXIT_INPUT)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_INPUT)
    except Exception as e:
        if _interrupted(e):
            raise KeyboardInterrupt from None
        raise


def main() -> None:
    from kvclaims import exits

    exits.run(_click_main)


if __name__ == "__main__":
    main()
