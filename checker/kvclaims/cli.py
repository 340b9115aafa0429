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
from kvclaims.trace.detect import FORMATS, STREAM_FORMATS

EXIT_OK, EXIT_VIOLATION, EXIT_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): stopped, no result presented (kvclaims.solver)


def _exit_code(reports: list[Any]) -> int:
    from kvclaims.run import exit_code

    return exit_code(reports)


def _complete_rules(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """Shell completion of --select/--ignore/--rule: the rule names the report prints."""
    from kvclaims.check import selection

    spec = spec_mod.load()
    names = [selection.printed_name(spec, rid) for rid in spec.rules]
    return [n for n in names if n.startswith(incomplete)]


def decision_options(f: Any) -> Any:
    """The options of every command that shows a verdict (check, explain, shrink), folded into
    ONE kvclaims.run.Options passed as `options`: the commands decide with the same options
    through the same function. A new decision option (e.g. a deferral bound) is one Options
    field and one flag here whose parameter has the field's name; nothing else changes."""
    flags = [
        click.option("--input-format", type=click.Choice([*FORMATS, *STREAM_FORMATS]),
                     default=None,
                     help="Override format detection (vllm, sglang, dynamo, trtllm, lmcache: a "
                          "runtime's recorded KV event stream, docs/formats.md; sglang hashes a "
                          "manifest's token_ids with SGLang's own function)."),
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
        click.option("--select", "select", multiple=True, metavar="RULE",
                     shell_complete=_complete_rules,
                     help="Count only these rules in the verdict (repeat or comma-separate; the "
                          "names the report prints, e.g. no-silent-loss, or full ids). The "
                          "report names every rule left out."),
        click.option("--ignore", "ignore", multiple=True, metavar="RULE",
                     shell_complete=_complete_rules,
                     help="Leave these rules out of the verdict: their violations are not "
                          "counted (the report says how many there were), their unknowns still "
                          "are."),
    ]

    @functools.wraps(f)
    def wrapper(**kw: Any) -> Any:
        values = {name: kw.pop(name) for name in names}
        kw["options"] = _options(values, _configured(values, wrapper))
        return f(**kw)

    before = len(getattr(wrapper, "__click_params__", ()))
    for flag in reversed(flags):
        wrapper = flag(wrapper)
    names = [p.name for p in wrapper.__click_params__[before:]]  # type: ignore[attr-defined]
    return wrapper


def _rule_names(items: Any) -> list[str]:
    """--select/--ignore values: repeated, comma-separated, or both."""
    return [x.strip() for item in items for x in str(item).split(",") if x.strip()]


def _configured(values: dict[str, Any], command: Any) -> dict[str, str]:
    """Fill `values` the command line left at their defaults from the configuration file
    (kvclaims.config: flags win); return {option name: the file that gave it}."""
    from kvclaims import config as config_mod

    try:
        found = config_mod.find()
        if found is None:
            return {}
        ctx = click.get_current_context()
        params = {p.name: p for p in ctx.command.params if p.name in values}
        keys = {p.opts[0].removeprefix("--"): p for p in params.values()}
        config_mod.check_keys(found, list(keys))
    except config_mod.ConfigError as err:
        raise click.UsageError(str(err)) from None
    given = {}
    for key, raw in found.values.items():
        param = keys[key]
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.DEFAULT:
            continue  # the command line wins
        items = raw if isinstance(raw, list) else [raw]
        if isinstance(param.type, click.Path):  # a path in the file is relative to the file
            items = [os.path.join(found.path.parent, x) if isinstance(x, str) else x
                     for x in items]
        if not param.multiple and isinstance(raw, list):
            raise click.UsageError(str(found.error(key, f"{key}: one value, not a list")))
        try:
            converted = [param.type.convert(x, param, ctx) for x in items]
            if param.name in ("select", "ignore"):  # rule names: checked here to be located
                from kvclaims.check import selection

                selection.resolve(spec_mod.load(), _rule_names(converted))
        except click.BadParameter as err:
            raise click.UsageError(str(found.error(key, f"{key}: {err.message}"))) from None
        except ValueError as err:
            raise click.UsageError(str(found.error(key, f"{key}: {err}"))) from None
        values[param.name] = tuple(converted) if param.multiple else converted[0]
        given[param.name] = found.label
    return given


def _options(values: dict[str, Any], configured: dict[str, str] | None = None) -> Any:
    """The decision options, each checked: an unknown gate or a malformed skew is a usage
    error naming the valid choices. A flag named as an Options field is passed through as is."""
    from kvclaims.check import gate as gates
    from kvclaims.check import selection
    from kvclaims.run import Options, defer_bounds_option
    from kvclaims.trace.partial_input import parse_skew_option

    spec = spec_mod.load()
    values = dict(values)
    configured = configured or {}
    by = []
    for name in ("select", "ignore"):
        names = _rule_names(values[name])
        try:
            values[name] = selection.resolve(spec, names)
        except ValueError as err:
            flag = f"--{name}" if name not in configured else f"{configured[name]}: {name}"
            raise click.UsageError(f"{flag}: {err}") from None
        if names:
            label = configured.get(name, f"--{name}")
            if label not in by:
                by.append(label)
    values["rules_by"] = " and ".join(by) or Options.rules_by
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


# Each command's help ends with its exit codes and an example; every example is also run, with
# its output shown, in docs/cli.md (tests/test_docs_examples.py runs it; tests/test_cli_help.py
# checks the two agree).
INTERRUPTED = "130/143 interrupted (SIGINT/SIGTERM)"
EXAMPLES: dict[str, tuple[str, ...]] = {
    "check": ("kvclaims check traces/rules/bad-silent-loss.kvt",
              "kvclaims check --format json --ignore no-silent-loss traces/rules/bad-silent-loss.kvt"),
    "convert": ("kvclaims convert traces/rules/bad-silent-loss.kvt --to jsonl -o bad.jsonl",),
    "litmus": ("kvclaims litmus --format json --out litmus-out",),
    "explain": ("kvclaims explain traces/rules/bad-silent-loss.kvt --out silent.html",),
    "lower": ("kvclaims lower --runtime vllm",),
    "prove": ("kvclaims prove traces/bad-lowering/hard-onto-ttl.toml --format json",),
    "fuzz": ("kvclaims fuzz --runtime micro:soft_priority+silent_loss --examples 200 "
             "--out fuzz-out",),
    "watch": ("kvclaims watch tcp://127.0.0.1:1 --claims traces/vllm/0.34.0/claims.toml "
              "--idle-timeout 1",),
    "shrink": ("kvclaims shrink traces/rules/bad-silent-loss.kvt --rule no-silent-loss "
               "-o min.kvt",),
    "spec": ("kvclaims spec",),
    "probe": ("kvclaims probe vllm --format json",),
    "relay": ("kvclaims relay traces/vllm/0.34.0/stock-probe.kvbatches nats://127.0.0.1:4222 "
              "--stream KVCLI --subject kv.cli --instance engine-a",),
}
EXIT_CODES: dict[str, str] = {
    "check": "0 conformant, 1 violation or a failed --require gate, 2 usage or input error, "
             "3 inconclusive",
    "convert": "0 written, 2 usage or input error, or a declaration the target cannot express "
               "(nothing written)",
    "litmus": "0 every case agrees with the model, 1 a disagreement",
    "explain": "0 written, 2 usage or input error, 3 an input check calls inconclusive (e.g. an "
               "unknown format version)",
    "lower": "0 table built, 1 a descriptor error or over-claim, 2 usage error, 3 inconclusive "
             "(a solver unknown, or anchors --verify-anchors could not check)",
    "prove": "0 every bad lowering rejected and the KV-RM proof holds, 1 a bad lowering "
             "accepted or a KV-RM witness, 2 usage or input error, 3 inconclusive",
    "fuzz": "0 no failure found, 1 failures found (or --replay: the replayed verdict's code), "
            "2 usage error (an unknown or unavailable runtime)",
    "watch": "0 conformant, 1 violation, 2 usage or input error, 3 inconclusive (nothing "
             "received, missed history, a gap)",
    "shrink": "0 shrunk and re-checked, 1 the written trace does not re-check, 2 usage or input "
              "error or TRACE does not violate the rule, 3 the engine could not decide",
    "spec": "0 written",
    "probe": "0 conformant, 1 violation, 2 usage error (an unknown runtime, or one not installed "
             "in this environment), 3 inconclusive",
    "relay": "0 stopped (the source ended, idle or --max-batches), 2 usage error or an "
             "unreachable server",
}


def epilog(command: str) -> str:
    """The end of `kvclaims COMMAND --help`: exit codes and examples (\\b keeps the lines)."""
    examples = "\n".join(f"  {e}" for e in EXAMPLES[command])
    return (f"Exit codes: {EXIT_CODES[command]}; {INTERRUPTED}.\n\n\b\nExample"
            f"{'s' if len(EXAMPLES[command]) > 1 else ''}:\n{examples}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvclaims")
def cli() -> None:
    """kvclaims: check that serving runtimes honour resident KV claims.

    The model as data (events, rules with their sentences, modes and their bundles): `kvclaims
    spec`. Each command: `kvclaims COMMAND --help` (its exit codes and an example at the end).
    Exit codes: 0 conformant, 1 violation, 2 usage or input error, 3 inconclusive, 130/143
    interrupted. Decision options may also come from kvclaims.toml or [tool.kvclaims] of
    pyproject.toml. Shell completion (bash): eval "$(_KVCLAIMS_COMPLETE=bash_source kvclaims)";
    docs/cli.md."""


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


@cli.command(epilog=epilog("check"))
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True, help="Report format.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: on a terminal, for large inputs).")
@click.option("--witness", "witness", default=None, metavar="PREFIX",
              help="Write the violating and conforming orders the Z3 engine found as "
                   "PREFIX.violating.kvt and PREFIX.conforming.kvt.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Decide files in N worker processes (default: the machine's cores, at most "
                   "one per file; 1, and one file, in this process). Reports are the same and "
                   "in the same order for every N.")
@click.option("--ray", "use_ray", is_flag=True,
              help="Decide files as Ray tasks (pip install 'kvclaims[ray]'): a local Ray unless "
                   "--ray-address is given.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="The Ray cluster to run on (implies --ray); every path must be readable "
                   "there.")
@click.option("--shard-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="With --jobs N>1 or --ray: a file not decided in S seconds is "
                                "reported inconclusive (the others are unaffected).")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only the reports of files that are not conformant, then the closing "
                   "summary (JUnit: the whole document, unchanged).")
@click.option("--width", type=click.IntRange(min=20), default=None, metavar="N",
              help="Wrap the text report at N columns (default: the terminal's width; off a "
                   "terminal lines are written whole). Lines are wrapped, never cut.")
@decision_options
def check(files: tuple[str, ...], fmt: str, progress: bool | None, witness: str | None,
          jobs: int | None, use_ray: bool, ray_address: str | None,
          shard_timeout: float | None, quiet: bool, width: int | None,
          options: Any) -> None:
    """Check trace FILES (or - for standard input) against the resident KV claim model.

    A directory is checked recursively: every .kvt, .jsonl and .kvbatches file under it (each
    also as .gz), in sorted order. With several files or a directory, a closing summary follows
    the reports (text: one line; JSON: one object with "kind": "summary"). Exit code: the worst
    overall result of any file (2 input error, 1 violation or failed gate, 3 inconclusive, 0
    conformant; docs/fleet.md)."""
    import time

    from rich.console import Console

    from kvclaims.check.verdict import CONFORMANT
    from kvclaims.explain import strips_for_report
    from kvclaims.fleet import inputs
    from kvclaims.fleet import summary as summary_mod
    from kvclaims.report import json as json_report
    from kvclaims.report import junit, text
    from kvclaims.run import decide_path

    spec = spec_mod.load()
    try:
        paths, directories = inputs.expand(files)
    except inputs.NoTraces as err:
        raise click.UsageError(str(err)) from None
    if witness is not None and len(paths) != 1:
        raise click.UsageError("--witness writes one trace's orders: give one FILE")
    use_ray = use_ray or ray_address is not None
    if use_ray and jobs is not None:
        raise click.UsageError("--jobs and --ray choose where files are decided: give one")
    if "-" in paths and (use_ray or (jobs or 1) > 1) and len(paths) > 1:
        raise click.UsageError("standard input (-) is read in this process: use --jobs 1")
    out = text.console_for(width)
    err = Console(stderr=True, soft_wrap=True)
    started = time.perf_counter()
    workers = jobs if jobs is not None else _default_jobs(paths)
    if use_ray:
        from kvclaims.fleet import ray_tasks

        reports = ray_tasks.decide_all(paths, options, address=ray_address,
                                       timeout=shard_timeout)
    elif workers > 1 and len(paths) > 1:
        from kvclaims.fleet import pool

        reports = pool.decide_all(paths, options, workers, timeout=shard_timeout)
    else:
        reports = []
        for path in paths:
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
    seconds = time.perf_counter() - started
    # Usage is checked against what the traces hold before anything is printed.
    _check_skew_sources(options, reports)
    for path, rep in zip(paths, reports):
        if witness is not None:
            _write_witnesses(path, rep, spec, options, witness, err)
        if quiet and rep.result == CONFORMANT:
            continue
        if fmt == "json":
            sys.stdout.write(json_report.render(rep) + "\n")
            sys.stdout.flush()
        elif fmt == "text":
            text.render(rep, spec, out, strips_for_report(rep, spec))
    if fmt == "junit":
        sys.stdout.write(junit.render(reports))
    elif directories or len(paths) > 1 or quiet:
        closing = summary_mod.summarize(reports, seconds)
        if fmt == "json":
            import msgspec

            sys.stdout.write(msgspec.json.encode(summary_mod.to_dict(closing)).decode() + "\n")
        else:
            out.print(summary_mod.text_line(closing), markup=False, highlight=False)
        sys.stdout.flush()
    sys.exit(_exit_code(reports))


def _cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _default_jobs(paths: list[str]) -> int:
    """The default --jobs (docs/fleet.md): the machine's cores, at most one worker per file, so
    one file is decided in this process; 1 (this process) when standard input is one of them.
    The reports are the ones `--jobs 1` prints whatever the count (tests/fleet)."""
    if "-" in paths:
        return 1
    return max(1, min(_cores(), len(paths)))


@cli.command(epilog=epilog("convert"))
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


@cli.command(epilog=epilog("litmus"))
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Also write every litmus trace (.kvt) and expected.json into DIR.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def litmus(out_dir: str | None, fmt: str) -> None:
    """Run L1-L7, C1 and the capacity sweep of the model through the MicroRuntime and check them.

    Prints one row per case, in this column order: case, policy, verdict, the facts expected
    (and, on a line below, those observed where they differ); then `N/M litmus cases agree`.
    """
    from kvclaims.litmus import litmus_command

    sys.exit(litmus_command(out_dir, fmt))


@cli.command(epilog=epilog("explain"))
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


@cli.command(epilog=epilog("lower"))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text",
              show_default=True)
@click.option("--verify-anchors", is_flag=True,
              help="Check every source anchor against an installed package or --source tree; "
                   "anchors it could not check are listed and make the result inconclusive "
                   "(exit 3).")
@click.option("--source", type=click.Path(exists=True, file_okay=False), default=None,
              help="A source tree or site-packages directory to verify anchors against.")
@click.option("--runtime", default=None, metavar="NAME",
              help="Only this runtime's rows (e.g. vllm; an unknown name lists the runtimes).")
def lower(fmt: str, verify_anchors: bool, source: str | None, runtime: str | None) -> None:
    """The runtime x mode lowering table, fail-closed, with its deciding evidence."""
    from kvclaims.lower.commands import lower_command

    sys.exit(lower_command(fmt, verify_anchors, source, runtime=runtime))


@cli.command(epilog=epilog("prove"))
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format (json: schemas/prove.schema.json).")
def prove(path: str, fmt: str) -> None:
    """Check that every bad lowering in PATH (a file or directory) is rejected, with witnesses."""
    from kvclaims.lower.commands import prove_command

    sys.exit(prove_command(path, fmt=fmt))


@cli.command(epilog=epilog("fuzz"))
@click.option("--runtime", required=True, metavar="RUNTIME",
              help="micro:<policy>[,param=v][+fault] | vllm:<stock|plugin>[,mode=M][,on_conflict=C] "
                   "(in a vLLM environment) | sglang[:<stock|plugin>][,mode=M][,on_conflict=C] "
                   "(in an SGLang environment) | py:<module>:<factory>")
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


@cli.command(epilog=epilog("probe"))
@click.argument("runtime", metavar="RUNTIME")
@click.option("--plugin", is_flag=True,
              help="Run the probe through the runtime's claim-aware extension.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def probe(runtime: str, plugin: bool, fmt: str) -> None:
    """Run the 60/70/80 probe on RUNTIME's real code (vllm, sglang) and print its facts.

    The runtime must be installed in this environment (scripts/setup-runtime NAME==VERSION
    prints one that has it). The verdict is the checker's, over the trace the probe recorded.
    Exit 0 conformant, 1 violation, 3 inconclusive, 2 usage error (e.g. runtime not installed).
    """
    from kvclaims import probe as pc

    try:
        probe_facts = pc.load_probe(runtime)
    except pc.ProbeUnavailable as e:
        click.echo(f"kvclaims {e}", err=True)
        sys.exit(EXIT_INPUT)
    facts = probe_facts(plugin)
    click.echo(pc.render(facts, fmt))
    sys.exit(pc.exit_code(facts))


@cli.command(epilog=epilog("watch"))
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
@click.option("--select", "select", multiple=True, metavar="RULE",
              shell_complete=_complete_rules,
              help="Count only these rules (as check --select; the configuration file is not "
                   "read by watch).")
@click.option("--ignore", "ignore", multiple=True, metavar="RULE",
              shell_complete=_complete_rules,
              help="Leave these rules out: their violations are neither shown nor counted; the "
                   "final report names them.")
@click.option("--stream", default=None, metavar="NAME",
              help="nats:// only: the JetStream stream `kvclaims relay` writes.")
@click.option("--durable", default=None, metavar="NAME",
              help="nats:// only: the durable consumer (and checkpoint) this audit resumes.")
@click.option("--subject", default=None, metavar="SUBJ",
              help="nats:// only: only messages on SUBJ (one instance's subject).")
@click.option("--checkpoint-bucket", default="kvclaims-checkpoints", show_default=True,
              metavar="BUCKET", help="nats:// only: the object store holding checkpoints.")
@click.option("--ack-wait", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="S", help="nats:// only: seconds before an unacknowledged message is "
                                "redelivered (set when the durable is created).")
@click.option("--fetch", type=click.IntRange(min=1), default=16, show_default=True,
              metavar="N", help="nats:// only: messages asked for at once.")
@click.option("--input-format", "input_format", type=click.Choice(["vllm", "sglang", "dynamo"]),
              default="vllm", show_default=True,
              help="The publisher: vLLM's or SGLang's ZmqEventPublisher ([topic, seq, batch] "
                   "frames), or a Dynamo KvEventPublisher's event-plane socket (RouterEvents; "
                   "docs/formats.md).")
@click.option("--checkpoint-interval", type=click.FloatRange(min=0), default=1.0,
              show_default=True, metavar="S",
              help="nats:// only: checkpoint (then acknowledge) at most every S seconds while "
                   "messages flow, and whenever the stream goes quiet.")
def watch(endpoint: str, replay: str | None, claims: str, fmt: str, topic: str,
          idle_timeout: float | None, max_batches: int | None, record: str | None,
          reorder_window: int, select: tuple[str, ...], ignore: tuple[str, ...],
          stream: str | None, durable: str | None, subject: str | None,
          checkpoint_bucket: str, ack_wait: float, fetch: int,
          checkpoint_interval: float, input_format: str) -> None:
    """Subscribe to a vLLM KV event stream (ZMQ; NATS JetStream for nats://HOST:PORT, with
    --stream and --durable) and decide the claims of MANIFEST.toml.

    Exit code: the verdict's (0 conformant, 1 violation, 3 inconclusive: nothing received,
    missed history or a gap), 2 on a usage or input error, 130/143 when interrupted by
    SIGINT/SIGTERM (the final report is printed first).
    """
    from kvclaims.check import selection
    from kvclaims.watch import watch_command

    # --select/--ignore: the rules the verdict counts, applied to the decided report as `check`
    # applies them (kvclaims.check.selection), on either kind of endpoint.
    spec = spec_mod.load()
    chosen, by = {}, []
    for name, given in (("select", select), ("ignore", ignore)):
        try:
            chosen[name] = selection.resolve(spec, _rule_names(given))
        except ValueError as e:
            raise click.UsageError(f"--{name}: {e}") from None
        if chosen[name]:
            by.append(f"--{name}")
    rules = selection.selection(spec, chosen["select"], chosen["ignore"], " and ".join(by))
    if endpoint.startswith(("nats://", "tls://")):
        from kvclaims.watch_nats import watch_nats

        zmq_only = [n for n, v in (("--replay", replay), ("--topic", topic or None),
                                   ("--max-batches", max_batches), ("--record", record),
                                   ("--input-format dynamo", input_format == "dynamo")) if v]
        if zmq_only or not stream or not durable:
            raise click.UsageError(
                f"{', '.join(zmq_only)} appl{'ies' if len(zmq_only) == 1 else 'y'} to a ZMQ "
                "endpoint only" if zmq_only else "a nats:// watch needs --stream and --durable")
        sys.exit(watch_nats(endpoint, claims, fmt, stream=stream, durable=durable,
                            subject=subject, bucket=checkpoint_bucket, idle_timeout=idle_timeout,
                            ack_wait=ack_wait, fetch=fetch, window=reorder_window,
                            checkpoint_interval=checkpoint_interval, rules=rules))
    if stream or durable or subject:
        raise click.UsageError("--stream, --durable and --subject apply to a nats:// endpoint")
    if input_format == "dynamo" and replay:
        raise click.UsageError("--replay is vLLM's and SGLang's replay socket: a Dynamo "
                               "publisher has none (its router recovers gaps from the worker's "
                               "local indexer, which kvclaims does not ask)")
    sys.exit(watch_command(endpoint, replay, claims, fmt, topic=topic, idle_timeout=idle_timeout,
                           max_batches=max_batches, record=record, window=reorder_window,
                           rules=rules, input_format=input_format))


@cli.command(epilog=epilog("relay"))
@click.argument("endpoint")
@click.argument("url", metavar="nats://HOST:PORT")
@click.option("--stream", required=True, metavar="NAME",
              help="The JetStream stream (created, file storage, if missing).")
@click.option("--subject", required=True, metavar="SUBJ", help="The subject batches go to.")
@click.option("--replay", default=None, metavar="ENDPOINT",
              help="vLLM's replay socket, asked for batches missed in a sequence gap.")
@click.option("--instance", default=None, metavar="ID",
              help="The engine's name in message ids (default: ENDPOINT).")
@click.option("--topic", default="", metavar="T",
              help="Only frames whose topic is exactly T (vLLM's kv_events_config topic).")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop after S seconds without a batch.")
@click.option("--max-batches", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N batches received.")
def relay(endpoint: str, url: str, stream: str, subject: str, replay: str | None,
          instance: str | None, topic: str, idle_timeout: float | None,
          max_batches: int | None) -> None:
    """Publish an engine's KV event batches (ZMQ ENDPOINT, or a record file) to JetStream, once.

    The message id carries the instance, the publisher's run and the batch number, so JetStream
    drops a batch published twice; gaps are filled from --replay. Exit 0 when stopped, 2 on a
    usage error or an unreachable server.
    """
    from kvclaims.relay import relay as run_relay

    sys.exit(run_relay(endpoint, url, stream, subject, replay, instance=instance, topic=topic,
                       idle_timeout=idle_timeout, max_batches=max_batches))


@cli.command("shrink", epilog=epilog("shrink"))
@click.argument("trace")
@click.option("--rule", default=None, metavar="RULE", shell_complete=_complete_rules,
              help="The rule the result must still violate, as the report prints it "
                   "(no-silent-loss) or its full id (default: the rule of the trace's first "
                   "violation).")
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
    if rule is not None:  # the name the report prints (no-silent-loss) or the full id
        from kvclaims.check import selection

        try:
            (rule,) = selection.resolve(spec, [rule])
        except ValueError as e:
            raise click.UsageError(f"--rule: {e}") from None

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


@cli.command("spec", epilog=epilog("spec"))
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
