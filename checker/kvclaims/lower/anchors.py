"""Check evidence anchors (docs/model.md §9: "an anchor is checkable").

- `source` anchors `runtime@version:path:symbol-or-line` are checked against an installed package
  (importlib.util.find_spec + the file exists + the symbol is defined, found with `ast` for Python
  and `.pyi` files, as a word for other text; a line anchor must exist) or against a source tree /
  site-packages directory (`--source DIR`). A version other than the anchor's (installed
  distribution, or a `*.dist-info` in DIR) is drift.
- `trace` anchors are re-checked with the replay checker (and the gate they name) and must give
  their recorded verdict; they also yield what the trace positively witnesses per mode, which the
  relation uses for supports(e, o).
- `doc` and `issue` anchors are recorded, not fetched (no network at check time): `unchecked`.

Drift is reported loudly; a missing package or a path outside DIR is `unchecked`, never verified.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from importlib import resources
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kvclaims import spec as spec_mod
from kvclaims.lower.descriptor import Anchor, Descriptor
from kvclaims.lower.relation import DRIFT, UNCHECKED, VERIFIED, AnchorCheck, anchor_key

SOURCE_RE = re.compile(r"^(?P<runtime>[a-z0-9][a-z0-9._-]*)@(?P<version>[^:@\s]+):"
                       r"(?P<path>[^:\s]+):(?P<target>[^:\s]+)$")


def evidence_root() -> Path:
    """Where a trace anchor's path (`traces/...`) is resolved: the installed package, which ships
    the evidence traces as package data (kvclaims/traces, the repository's traces/ by a symlink
    in the checkout), so a wheel decides the same lowering table as the checkout."""
    return Path(str(resources.files("kvclaims")))


@dataclass(frozen=True, slots=True)
class SourceRef:
    runtime: str
    version: str
    path: str
    target: str  # dotted symbol or a line number

    @property
    def line(self) -> int | None:
        return int(self.target) if self.target.isdigit() else None


def parse_source(ref: str) -> SourceRef:
    m = SOURCE_RE.match(ref)
    if m is None:
        raise ValueError(f"not a source anchor (runtime@version:path:symbol-or-line): {ref!r}")
    return SourceRef(m["runtime"], m["version"], m["path"], m["target"])


# ---- symbols -------------------------------------------------------------------------------------
def _names(body: Iterable[ast.stmt]) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, (ast.If, ast.Try)):
            out.update(_names(node.body))
            for h in getattr(node, "handlers", ()):
                out.update(_names(h.body))
            out.update(_names(node.orelse))
    return out


def python_symbol(text: str, dotted: str) -> bool:
    """Is `dotted` (e.g. BlockPool.get_new_blocks) defined in this Python source?"""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    scope: Iterable[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in dotted.split("."):
        node = _names(scope).get(part)
        if node is None:
            return False
        scope = getattr(node, "body", ())
    return True


def text_symbol(text: str, dotted: str) -> bool:
    """For C++/docs: every component of the dotted name occurs as a word."""
    return all(re.search(rf"\b{re.escape(p)}\b", text) for p in dotted.split("."))


def check_file(file: Path, target: str) -> tuple[bool, str]:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return False, f"cannot read {file}: {err.strerror}"
    if target.isdigit():
        n = text.count("\n") + (0 if text.endswith("\n") else 1)
        ok = 1 <= int(target) <= n
        return ok, "" if ok else f"line {target} beyond the end of {file.name} ({n} lines)"
    if file.suffix in (".py", ".pyi"):
        ok = python_symbol(text, target)
    else:
        ok = text_symbol(text, target)
    return ok, "" if ok else f"symbol {target} not defined in {file}"


# ---- locating the source -----------------------------------------------------------------------
def _dist_versions(directory: Path, distribution: str) -> list[str]:
    norm = re.sub(r"[-_.]+", "_", distribution).lower()
    out = []
    for d in directory.glob("*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].rpartition("-")
        if re.sub(r"[-_.]+", "_", name).lower() == norm:
            out.append(version)
    return out


def check_source(ref: SourceRef, package: str | None, distribution: str | None,
                 source: Path | None) -> AnchorCheck:
    top = ref.path.split("/")[0]
    if source is not None:
        candidates = [source / ref.path, source / "python" / ref.path]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            if (source / top).is_dir() or (source / "python" / top).is_dir():
                return AnchorCheck(DRIFT, f"{ref.path} missing under {source}")
            return AnchorCheck(UNCHECKED, f"{top} not under {source}")
        versions = _dist_versions(source, distribution) if distribution else []
        if versions and ref.version not in versions:
            return AnchorCheck(DRIFT, f"{source} holds {distribution} {', '.join(versions)}, "
                                      f"the anchor pins {ref.version}")
        ok, why = check_file(file, ref.target)
        note = "" if versions else " (version not confirmed: no dist-info)"
        return AnchorCheck(VERIFIED if ok else DRIFT, (why or f"found in {file}") + note)
    if package is None or top != package:
        return AnchorCheck(UNCHECKED, f"no installed Python package holds {ref.path}")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return AnchorCheck(UNCHECKED, f"{package} is not installed in {sys.prefix}")
    base = Path(next(iter(spec.submodule_search_locations))).parent
    if distribution:
        try:
            installed = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is not None and installed != ref.version:
            return AnchorCheck(DRIFT, f"installed {distribution} {installed}, the anchor pins "
                                      f"{ref.version}")
    file = base / ref.path
    if not file.is_file():
        return AnchorCheck(DRIFT, f"{ref.path} missing in the installed {package}")
    ok, why = check_file(file, ref.target)
    return AnchorCheck(VERIFIED if ok else DRIFT, why or f"found in {file}")


# ---- traces ----------------------------------------------------------------------------------------
def check_trace(anchor: Anchor, root: Path | None = None) -> AnchorCheck:
    from kvclaims.run import Options, check_path

    spec = spec_mod.load()
    path = (root or evidence_root()) / anchor.ref
    if not path.is_file():
        return AnchorCheck(DRIFT, f"trace {anchor.ref} missing")
    require = (anchor.require,) if anchor.require else ()
    report = check_path(str(path), spec, Options(require=require))
    violated = frozenset(f.rule for f in report.findings if f.status == "violation")
    passed: dict[str, frozenset[str]] = {}
    for mode in spec.modes:
        claims = [c for c in report.claims if c.mode == mode]
        if claims:
            passed[mode] = frozenset(r for r in spec.modes[mode].rules
                                     if all(c.rules.get(r) == "pass" for c in claims))
    missing = tuple(m for g in report.gates for m in g.missing)
    status, detail = VERIFIED, f"replay: {report.verdict}"
    if report.verdict != anchor.verdict:
        status, detail = DRIFT, f"replay gives {report.verdict}, the anchor records {anchor.verdict}"
    elif not set(anchor.violated) <= violated:
        status, detail = DRIFT, (f"replay violates {sorted(violated)}, the anchor records "
                                 f"{list(anchor.violated)}")
    return AnchorCheck(status, detail, passed, violated, missing)


def check_proof(anchor: Anchor) -> AnchorCheck:
    """Re-run a Z3 proof (kvclaims.lower.kvrm_proof). Only a closed proof (bounded check and
    k-induction) verifies, and then witnesses the rules it checked for the modes it covers; a
    witness is a violation of its rule; a bound without induction stays unchecked (fail-closed)."""
    from kvclaims.lower import kvrm_proof

    if anchor.ref != kvrm_proof.NAME:
        return AnchorCheck(DRIFT, f"unknown proof {anchor.ref!r}")
    p = kvrm_proof.proof()
    r = p.result
    if r.status == "witness":
        return AnchorCheck(DRIFT, f"proof fails: {p.summary}", violated=frozenset({r.rule or ""}))
    if r.status != "proved":
        return AnchorCheck(UNCHECKED, p.summary)
    passed = {m: frozenset(r.rules_checked) for m in kvrm_proof.MODES}
    return AnchorCheck(VERIFIED, p.summary, passed)


# ---- all anchors of the descriptors -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AnchorRow:
    runtime: str
    evidence: str
    anchor: Anchor
    check: AnchorCheck


def check_anchors(descriptors: Iterable[Descriptor], *, sources: bool = False,
                  source: Path | None = None) -> tuple[dict[str, AnchorCheck], list[AnchorRow]]:
    """Check every anchor: traces always, source anchors when `sources` (else unchecked)."""
    descriptors = tuple(descriptors)
    packages = {d.runtime: (d.package, d.distribution) for d in descriptors}
    checks: dict[str, AnchorCheck] = {}
    rows: list[AnchorRow] = []
    for d in descriptors:
        for e in d.evidence:
            for a in e.anchors:
                key = anchor_key(a)
                if key not in checks:
                    checks[key] = _check_one(a, packages, sources, source)
                rows.append(AnchorRow(d.runtime, e.id, a, checks[key]))
    return checks, rows


def _check_one(a: Anchor, packages: dict[str, tuple[str | None, str | None]], sources: bool,
               source: Path | None) -> AnchorCheck:
    if a.kind == "trace":
        return check_trace(a)
    if a.kind == "proof":
        return check_proof(a)
    if a.kind == "source":
        try:
            ref = parse_source(a.ref)
        except ValueError as err:
            return AnchorCheck(DRIFT, str(err))
        if ref.runtime not in packages:
            return AnchorCheck(DRIFT, f"unknown runtime {ref.runtime!r} in {a.ref}")
        if not sources:
            return AnchorCheck(UNCHECKED, "not verified (run --verify-anchors)")
        package, distribution = packages[ref.runtime]
        return check_source(ref, package, distribution, source)
    return AnchorCheck(UNCHECKED, f"{a.kind} anchor recorded, not fetched")


def verify_command(source: str | None = None, runtime: str | None = None,
                   out: IO[str] | None = None) -> int:
    """Print every source anchor's status; exit 1 on any drift (for scripts and CI)."""
    from kvclaims.lower.descriptor import load_descriptors

    stream = out or sys.stdout
    descriptors = [d for d in load_descriptors() if runtime is None or d.runtime == runtime]
    _, rows = check_anchors(descriptors, sources=True,
                            source=Path(source) if source else None)
    drift = 0
    counts = {VERIFIED: 0, DRIFT: 0, UNCHECKED: 0}
    for r in rows:
        if r.anchor.kind not in ("source", "trace"):
            continue
        counts[r.check.status] += 1
        mark = {VERIFIED: "ok   ", DRIFT: "DRIFT", UNCHECKED: "skip "}[r.check.status]
        if r.check.status == DRIFT:
            drift += 1
        print(f"{mark} {r.runtime:13} {r.anchor.text}  -- {r.check.detail}", file=stream)
    print(f"anchors: {counts[VERIFIED]} verified, {counts[DRIFT]} drift, "
          f"{counts[UNCHECKED]} unchecked", file=stream)
    return 1 if drift else 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kvclaims.lower.anchors",
                                 description="verify descriptor anchors")
    ap.add_argument("--source", help="site-packages or source tree to check source anchors in")
    ap.add_argument("--runtime", help="only this runtime's descriptor (e.g. vllm)")
    args = ap.parse_args(argv)
    return verify_command(args.source, args.runtime)


if __name__ == "__main__":
    raise SystemExit(main())
