"""--select / --ignore (kvclaims.check.selection) and the configuration file (kvclaims.config):
a left-out rule's violations leave the verdict and every view says so; its unknowns stay; names
are the report's or the full ids, read from spec/rules.toml; flags win over the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from kvclaims import spec as spec_mod
from kvclaims.check import selection
from kvclaims.check.verdict import CONFORMANT, UNKNOWN, VIOLATION
from kvclaims.report import json as json_report
from kvclaims.run import Options, decide_path

RULES = ROOT / "traces" / "rules"
TRACES = sorted(p.name for p in RULES.glob("*.kvt"))
SPEC = spec_mod.load()
RULE_IDS = list(SPEC.rules)


def test_every_rule_resolves_by_printed_name_and_full_id() -> None:
    for rid in RULE_IDS:
        assert selection.resolve(SPEC, [rid]) == (rid,)
        assert selection.resolve(SPEC, [selection.printed_name(SPEC, rid)]) == (rid,)
    with pytest.raises(ValueError, match="is not a rule"):
        selection.resolve(SPEC, ["no-such-rule"])


def test_the_printed_name_is_the_one_the_text_report_prints() -> None:
    out = kv("check", str(RULES / "bad-silent-loss.kvt")).stdout.decode()
    finding_rule = json.loads(kv("check", "--format", "json", str(RULES / "bad-silent-loss.kvt"))
                              .stdout)["findings"][0]["rule"]
    assert f"{selection.printed_name(SPEC, finding_rule)} FAIL" in out


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(TRACES), st.sets(st.sampled_from(RULE_IDS)), st.booleans())
def test_leaving_rules_out_drops_exactly_their_violations(name: str, left: set[str],
                                                          as_select: bool) -> None:
    path = str(RULES / name)
    whole = decide_path(path, SPEC, Options())
    if as_select:
        options = Options(select=tuple(r for r in RULE_IDS if r not in left) or (),
                          rules_by="--select")
        if not options.select:  # selecting nothing is not expressible: every rule counts
            return
    else:
        options = Options(ignore=tuple(sorted(left)), rules_by="--ignore")
    part = decide_path(path, SPEC, options)
    kept = [f for f in whole.findings if not (f.rule in left and f.status == VIOLATION)]
    assert list(part.findings) == kept
    # unknowns of left-out rules stay: missing evidence is never made a pass
    assert all(f.status == UNKNOWN for f in part.findings if f.rule in left)
    if any(f.status == VIOLATION for f in kept):
        assert part.verdict == VIOLATION
    if part.verdict == CONFORMANT:
        assert not any(f.status == UNKNOWN for f in part.findings)
    if whole.verdict != VIOLATION:
        assert part.verdict == whole.verdict  # leaving rules out never changes a non-violation
    for c in part.claims:
        assert not any(rid in left and st != UNKNOWN for rid, st in c.rules.items())
    data = json_report.to_dict(part)
    if left:
        assert data["rules_left_out"]["rules"] == [r for r in RULE_IDS if r in left]
        dropped = {r for r in left if any(f.rule == r and f.status == VIOLATION
                                          for f in whole.findings)}
        assert set(data["rules_left_out"]["violations_not_counted"]) == dropped
        assert selection.summary(part, SPEC) is not None
    else:
        assert data["rules_left_out"] is None and part == whole


def kv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "checker")}
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          timeout=120, cwd=cwd, env=env)


def test_every_view_says_which_rules_were_left_out_and_by_whom(tmp_path: Path) -> None:
    bad = str(RULES / "bad-silent-loss.kvt")
    text = kv("check", bad, "--ignore", "no-silent-loss")
    assert text.returncode == 0
    assert "rules left out by --ignore: no-silent-loss; not counted: no-silent-loss ×1" in \
        text.stdout.decode()
    data = json.loads(kv("check", "--format", "json", bad, "--ignore", "R-no-silent-loss").stdout)
    assert data["result"] == "conformant"
    assert data["rules_left_out"] == {"rules": ["R-no-silent-loss"], "by": "--ignore",
                                      "violations_not_counted": {"R-no-silent-loss": 1}}
    junit = kv("check", "--format", "junit", bad, "--ignore", "no-silent-loss").stdout.decode()
    assert 'name="rules_left_out" value="rules left out by --ignore' in junit
    out = tmp_path / "x.html"
    assert kv("explain", bad, "--ignore", "no-silent-loss", "--out", str(out)).returncode == 0
    assert "rules left out by --ignore: no-silent-loss" in out.read_text()
    sel = kv("check", bad, "--select", "hard,identity")
    assert sel.returncode == 0 and "rules left out by --select: acceptance" in sel.stdout.decode()
    # shrink takes the printed name too
    assert kv("shrink", bad, "--rule", "no-silent-loss", "-o", str(tmp_path / "m.kvt")
              ).returncode == 0
    usage = kv("check", bad, "--ignore", "nope")
    assert usage.returncode == 2 and b"'nope' is not a rule" in usage.stderr


def test_an_unknown_is_never_left_out() -> None:
    gap = str(RULES / "unknown-stream-gap.kvt")
    whole = json.loads(kv("check", "--format", "json", gap).stdout)
    rules = sorted({f["rule"] for f in whole["findings"]})
    r = kv("check", "--format", "json", gap, *[x for rule in rules for x in ("--ignore", rule)])
    assert r.returncode == 3 and json.loads(r.stdout)["result"] == "inconclusive"


def test_configuration_file_upward_with_flags_winning(tmp_path: Path) -> None:
    bad = str(RULES / "bad-silent-loss.kvt")
    project = tmp_path / "proj"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.kvclaims]\nignore = ["no-silent-loss"]\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 0
    # named as found: relative to the current directory when inside it, else absolute
    assert f"rules left out by {(project / 'pyproject.toml').resolve()}: no-silent-loss" in \
        r.stdout.decode()
    # a kvclaims.toml nearer the current directory wins over a pyproject.toml farther up
    (deep / "kvclaims.toml").write_text('select = ["hard"]\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 0 and "rules left out by kvclaims.toml: identity" in r.stdout.decode()
    # a flag wins over its key; other keys still apply
    r = kv("check", bad, "--select", "no-silent-loss", cwd=deep)
    assert r.returncode == 1 and "rules left out by --select" in r.stdout.decode()
    (deep / "kvclaims.toml").write_text('engine = "replay"\n\nmax-defer-steps = "many"\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 2 and b"kvclaims.toml:3:1: max-defer-steps:" in r.stderr
    (deep / "kvclaims.toml").write_text('# mine\nengine = "replay"\n  colour = "red"\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 2 and b"kvclaims.toml:3:3: unknown key 'colour'" in r.stderr
    (deep / "kvclaims.toml").write_text('ignore = ["no-such"]\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 2 and b"kvclaims.toml:1:1: ignore: 'no-such' is not a rule" in r.stderr
    (deep / "kvclaims.toml").write_text('ignore = [\n')
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 2 and b"kvclaims.toml:" in r.stderr and b"not TOML" in r.stderr
    (project / "a" / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    (deep / "kvclaims.toml").unlink()
    # a pyproject.toml without [tool.kvclaims] is passed over
    r = kv("check", bad, cwd=deep)
    assert r.returncode == 0 and "no-silent-loss" in r.stdout.decode()


def test_a_path_in_the_configuration_is_relative_to_its_file(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "sub").mkdir(parents=True)
    vllm = ROOT / "traces" / "vllm" / "0.34.0"
    (project / "manifest.toml").write_bytes((vllm / "claims.toml").read_bytes())
    (project / "kvclaims.toml").write_text('claims = "manifest.toml"\n')
    r = kv("check", str(vllm / "stock-probe.kvbatches"), cwd=project / "sub")
    assert r.returncode == 1, r.stdout + r.stderr
