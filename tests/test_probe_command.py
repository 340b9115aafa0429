"""`kvclaims probe` without the runtime installed, and its rendering (kvclaims.probe).

The runs on real runtimes are tests/vllm/test_probe_command.py (and SGLang's in its own stage);
here: a runtime absent from this environment, an unknown runtime and a malformed name are usage
errors (exit 2) that name scripts/setup-runtime where it helps, never a traceback; the JSON object
has exactly the contract's keys, in order, for every combination of facts.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from kvclaims.cli import cli
from kvclaims.report.json import REPORT_VERSION
from kvclaims import probe as pc
from kvclaims.runtime.probe_facts import JSON_KEYS, PLUGIN_JSON_KEYS, ProbeFacts


def test_runtime_not_installed_is_a_usage_error_naming_setup_runtime() -> None:
    res = CliRunner().invoke(cli, ["probe", "vllm", "--format", "json"])
    assert res.exit_code == 2
    assert "vllm is not installed in this environment" in res.output
    assert "scripts/setup-runtime vllm==VERSION" in res.output
    assert "Traceback" not in res.output


def test_unknown_runtime_and_bad_name_are_usage_errors() -> None:
    for name, why in [("nosuch", "no probe for runtime 'nosuch'"),
                      ("../x", "is not a runtime name"), ("Vllm", "is not a runtime name"),
                      ("probe_facts", "no probe for runtime")]:
        res = CliRunner().invoke(cli, ["probe", name])
        assert res.exit_code == 2, name
        assert why in res.output, (name, res.output)


facts = st.builds(
    ProbeFacts, runtime=st.sampled_from(["vllm", "sglang"]),
    runtime_version=st.sampled_from(["0.34.0", "0.33.0", "0.5.23"]), plugin=st.booleans(),
    verdict=st.sampled_from(["violation", "conformant", "inconclusive"]),
    victims=st.integers(0, 80),
    surviving_positions=st.lists(st.integers(0, 79), unique=True).map(lambda x: tuple(sorted(x))),
    rerequest_hit_blocks=st.none() | st.integers(0, 80),
    shortfall_blocks=st.none() | st.integers(0, 80), free_blocks=st.none() | st.integers(0, 80))


@given(facts)
def test_json_object_has_the_contract_keys_in_order(f: ProbeFacts) -> None:
    obj = json.loads(pc.render(f, "json"))
    assert list(obj) == list(JSON_KEYS + (PLUGIN_JSON_KEYS if f.plugin else ()))
    assert obj["report_version"] == REPORT_VERSION
    assert obj["surviving_positions"] == list(f.surviving_positions)
    assert (obj["verdict"], obj["victims"]) == (f.verdict, f.victims)
    if f.plugin:
        assert (obj["shortfall_blocks"], obj["free_blocks"]) == (f.shortfall_blocks, f.free_blocks)


@given(facts)
def test_text_and_exit_code_follow_the_facts(f: ProbeFacts) -> None:
    text = pc.render(f, "text")
    rows = {k.strip(): v.strip() for k, v in (ln.split("  ", 1) for ln in text.splitlines())}
    assert rows["verdict"] == f.verdict and rows["victims"] == str(f.victims)
    assert ("refusal shortfall blocks" in rows) == f.plugin
    assert pc.exit_code(f) == {"conformant": 0, "violation": 1, "inconclusive": 3}[f.verdict]
