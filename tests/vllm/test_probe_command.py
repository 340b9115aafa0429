"""`kvclaims probe vllm [--plugin] [--format json]` on the installed vLLM (issue 23 item 4).

The facts come from vLLM's own prefix cache and the checker's decision over the recorded trace;
the plug-in's refusal numbers must agree with vLLM's own pool at the moment of the refusal.
"""

from __future__ import annotations

import json
from importlib.resources import files

import jsonschema

import vllm
from click.testing import CliRunner

from kvclaims.cli import cli
from kvclaims.report.json import REPORT_VERSION
from kvclaims.runtime.probe_facts import JSON_KEYS, PLUGIN_JSON_KEYS
from kvclaims.runtime.vllm.harness import VllmHarness
from kvclaims.runtime.vllm.probe import (
    ACTIVE_BLOCKS,
    ACTIVE_TOKENS,
    BLOCK_SIZE,
    NUM_BLOCKS,
    RESIDENT_TOKENS,
    resident_claim,
)


def _probe(*args: str) -> tuple[int, dict]:
    res = CliRunner().invoke(cli, ["probe", "vllm", "--format", "json", *args])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output  # one JSON object, nothing else on stdout
    doc = json.loads(lines[0])
    # The schema the package ships for this report, checked on the real runtime's output.
    schema = json.loads((files("kvclaims") / "schemas" / "probe.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    return res.exit_code, doc


def test_stock_probe_json() -> None:
    code, obj = _probe()
    assert list(obj) == list(JSON_KEYS)
    assert obj["report_version"] == REPORT_VERSION
    assert (obj["runtime"], obj["runtime_version"]) == ("vllm", vllm.__version__)
    assert obj["verdict"] == "violation" and code == 1
    assert obj["victims"] == 50
    assert obj["surviving_positions"] == list(range(10))
    assert obj["rerequest_hit_blocks"] == 10


def test_plugin_probe_json_agrees_with_vllms_pool() -> None:
    code, obj = _probe("--plugin")
    assert list(obj) == list(JSON_KEYS + PLUGIN_JSON_KEYS)
    assert obj["verdict"] == "conformant" and code == 0
    assert obj["victims"] == 0
    assert obj["surviving_positions"] == list(range(60))
    assert obj["rerequest_hit_blocks"] == 59  # vLLM's num_tokens-1 rule
    # The same refusal, observed on vLLM's own BlockPool: the free count when the active request
    # was refused, and the blocks it lacked.
    h = VllmHarness(claims=[resident_claim()], plugin=True, num_blocks=NUM_BLOCKS,
                    block_size=BLOCK_SIZE)
    try:
        h.add_request("resident", RESIDENT_TOKENS)
        h.step()
        h.add_request("active", ACTIVE_TOKENS)
        h.step()
        assert h.outcomes["active"] == "refused"
        free = h.pool.get_num_free_blocks()
        claimed = len(h.still_cached("claim:resident"))
    finally:
        h.close()
    assert obj["free_blocks"] == free == NUM_BLOCKS - 1 - claimed
    assert obj["shortfall_blocks"] == ACTIVE_BLOCKS - free
    assert len(ACTIVE_TOKENS) == ACTIVE_BLOCKS * BLOCK_SIZE


def test_probe_text() -> None:
    res = CliRunner().invoke(cli, ["probe", "vllm"])
    assert res.exit_code == 1
    assert f"vllm {vllm.__version__} (stock)" in res.output
    rows = dict(line.split("  ", 1) for line in res.output.splitlines())
    assert rows["verdict"].strip() == "violation"
    assert rows["victims"].strip() == "50"
    assert rows["surviving positions"].strip() == "0-9 (10)"
    assert rows["re-request hit blocks"].strip() == "10"
