"""Every JSON the tool writes carries one `report_version` key and validates against the JSON
Schema shipped for it in the package (checker/kvclaims/schemas/), on real output: check (every
rule trace, partial orders, an input error, a KV event record, rules left out), litmus, lower,
prove, fuzz's summary.json and saved workloads, and watch's JSON Lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from conftest import ROOT

SCHEMAS = ROOT / "checker" / "kvclaims" / "schemas"
NAMES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
# Keys that once carried a report's version beside or instead of report_version (issue 20).
OLD_VERSION_KEYS = ("schema", "version", "kvclaims_workload")


def _registry() -> Registry:
    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    return Registry().with_resources(
        (name, Resource.from_contents(doc)) for name, doc in docs.items())


def validate(name: str, doc: dict) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(doc)
    assert "report_version" in doc
    assert not any(k in doc for k in OLD_VERSION_KEYS), "one version key per report"


VALIDATED: set[str] = set()


def kv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def json_lines(r: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_a_valid_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / f"{name}.schema.json")
                                                            .read_text()))


def test_check_reports_validate(tmp_path: Path) -> None:
    traces = sorted((ROOT / "traces" / "rules").glob("*.kvt")) + \
        sorted((ROOT / "traces" / "partial").glob("*.kvt")) + \
        sorted((ROOT / "traces" / "partial").glob("*.jsonl"))
    bad = tmp_path / "bad.kvt"
    bad.write_text("kvtrace 1\nclaim claim:r accepted mode=\n")
    r = kv("check", "--format", "json", *map(str, traces), str(bad), str(tmp_path / "none.kvt"))
    docs = json_lines(r)
    # One report per file, then the closing summary of several files (docs/fleet.md).
    assert len(docs) == len(traces) + 3
    *docs, closing = docs
    validate("check-summary", closing)
    assert closing["files"] == len(docs)
    for doc in docs:
        validate("check", doc)
    assert {d["scope"] for d in docs} == {"whole_trace", "part_read"}
    assert any(d["order"] for d in docs)  # a partly ordered trace's Z3 summary
    left = json_lines(kv("check", "--format", "json", "--ignore", "no-silent-loss",
                         str(ROOT / "traces" / "rules" / "bad-silent-loss.kvt")))
    validate("check", left[0])
    assert left[0]["rules_left_out"]["rules"]
    vllm = ROOT / "traces" / "vllm" / "0.34.0"
    stream = json_lines(kv("check", "--format", "json", str(vllm / "stock-probe.kvbatches"),
                           "--claims", str(vllm / "claims.toml")))
    validate("check", stream[0])
    assert "stream" in stream[0]
    VALIDATED.update({"check", "check-summary"})


def test_litmus_lower_and_prove_reports_validate() -> None:
    validate("litmus", json.loads(kv("litmus", "--format", "json").stdout))
    validate("lower", json.loads(kv("lower", "--format", "json").stdout))
    one = json.loads(kv("lower", "--format", "json", "--runtime", "vllm").stdout)
    validate("lower", one)
    assert {row["runtime"] for row in one["rows"]} == {"vllm"}
    r = kv("prove", "--format", "json", str(ROOT / "traces" / "bad-lowering"))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    validate("prove", doc)
    assert doc["total"] == doc["rejected"] > 0 and doc["kvrm"]["status"] == "proved"
    VALIDATED.update(("litmus", "lower", "prove"))


def test_fuzz_summary_and_workloads_validate(tmp_path: Path) -> None:
    r = kv("fuzz", "--runtime", "micro:soft_priority+silent_loss", "--examples", "200",
           "--out", str(tmp_path))
    assert r.returncode == 1, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    validate("fuzz-summary", summary)
    workloads = [f["workload"] for f in summary["failures"] if f["workload"]]
    assert workloads
    for w in workloads:
        validate("workload", json.loads(Path(w).read_text()))
    VALIDATED.update(("fuzz-summary", "workload"))


def test_watch_lines_validate(tmp_path: Path) -> None:
    zmq = pytest.importorskip("zmq")  # the test extra installs it; CI always has it
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.bind("tcp://127.0.0.1:0")
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    try:
        r = kv("watch", endpoint, "--claims", str(ROOT / "traces" / "vllm" / "0.34.0" / "claims.toml"),
               "--idle-timeout", "1", "--format", "jsonl")
    finally:
        sock.close(linger=0)
        ctx.term()
    assert r.returncode == 3, r.stderr
    lines = json_lines(r)
    assert lines and lines[-1]["kind"] == "verdict"
    for line in lines:
        schema = json.loads((SCHEMAS / "watch.schema.json").read_text())
        jsonschema.Draft202012Validator(schema, registry=_registry()).validate(line)
        assert line["report_version"] == 1
    validate("check", lines[-1]["report"])
    VALIDATED.add("watch")


# Schemas of reports only a runtime stage can produce, and the test there that validates them on
# the real runtime's output.
IN_A_RUNTIME_STAGE = {"probe": ROOT / "tests" / "vllm" / "test_probe_command.py"}


def test_every_shipped_schema_was_tested_on_real_output() -> None:
    """Runs last in this module (pytest keeps file order): no schema ships untested."""
    if len(VALIDATED) < len(NAMES) and not VALIDATED:
        pytest.fail("run the whole module: the schema tests above record what they validated")
    for name, test in IN_A_RUNTIME_STAGE.items():
        assert f"{name}.schema.json" in test.read_text(), f"{test} must validate {name}"
    assert VALIDATED | set(IN_A_RUNTIME_STAGE) == set(NAMES)
