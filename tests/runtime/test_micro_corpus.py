"""The MicroRuntime's 60/70/80 runs match the reference corpus event for event (docs/model.md §8).

Each corpus trace under ../shared/corpus/resident-kv-artifacts/artifacts/ (read in place, never
copied) is compared with the MicroRuntime run of the same scenario: the same event kinds in the
same order and counts, and the same physical blocks, logical positions and victim reasons, so the
free-queue order (never-cached first, then the resident tail first) is the one vLLM's BlockPool
showed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import ClaimSpec, sixty_seventy_eighty

from conftest import ARTIFACTS

CLAIM = ClaimSpec("claim:resident", 60)
EXPIRING_CLAIM = ClaimSpec("claim:resident", 60, duration_steps=1)

# corpus file -> (policy, usable, claim)
SCENARIOS: dict[str, tuple[P.Policy, int, ClaimSpec | None]] = {
    "conformance/L1_native_no_claim.jsonl": (P.Policy(P.NATIVE), 80, None),
    "conformance/L2_write_no_admit.jsonl": (P.Policy(P.WRITE_NO_ADMIT), 80, None),
    "conformance/L3_hard_claim_infeasibility.jsonl": (P.Policy(P.HARD_EXCLUDE), 80, CLAIM),
    "conformance/L4_demote_before_loss.jsonl": (P.Policy(P.DEMOTE_ON_CONFLICT), 80, CLAIM),
    "conformance/L5_expiry_before_loss.jsonl": (P.Policy(P.EXPIRING), 80, EXPIRING_CLAIM),
    "hard_claim/hard_claim_60_70_80.jsonl": (P.Policy(P.HARD_EXCLUDE), 80, CLAIM),
    "native_blockpool/native_blockpool_60_70_80.jsonl": (P.Policy(P.NATIVE), 80, None),
    "claim_lifecycle/demote.jsonl": (P.Policy(P.DEMOTE_ON_CONFLICT), 80, CLAIM),
    "claim_lifecycle/expire.jsonl": (P.Policy(P.EXPIRING), 80, EXPIRING_CLAIM),
    # A hard_exclude claim on a runtime whose primitive is soft priority: harm, then post-release
    # losses (the corpus's claim-metadata run).
    "claim_metadata/claim_metadata_60_70_80.jsonl": (
        P.Policy(P.SOFT_PRIORITY, declared_mode="hard_exclude"), 80, CLAIM),
}
for _usable in (80, 100, 120, 130, 150):
    SCENARIOS[f"capacity_sweep/native_{_usable}.jsonl"] = (P.Policy(P.NATIVE), _usable, None)
    SCENARIOS[f"capacity_sweep/write_no_admit_{_usable}.jsonl"] = (
        P.Policy(P.WRITE_NO_ADMIT), _usable, None)
    SCENARIOS[f"capacity_sweep/hard_resident_exclude_{_usable}.jsonl"] = (
        P.Policy(P.HARD_EXCLUDE), _usable, CLAIM)

# Fields compared event by event besides the kind (where the corpus event carries them).
COMPARED = ("physical_block_id", "logical_block_position", "victim_reason", "free_queue_rank",
            "request_id", "claim_id", "blocking_claim_ids", "capacity_shortfall_blocks",
            "free_blocks_before_allocate", "feasibility", "claim_status")


def _corpus(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_every_60_70_80_corpus_trace_is_compared(artifacts: Path) -> None:
    for rel in SCENARIOS:
        assert (artifacts / rel).is_file(), rel


@pytest.mark.parametrize("rel", sorted(SCENARIOS))
def test_microruntime_matches_corpus_sequence(artifacts: Path, rel: str) -> None:
    policy, usable, claim = SCENARIOS[rel]
    ours = run(sixty_seventy_eighty(usable, claim=claim), policy).events
    theirs = _corpus(artifacts / rel)
    assert [e.kind for e in ours] == [e["event"] for e in theirs]
    for i, (mine, ref) in enumerate(zip(ours, theirs)):
        for name in COMPARED:
            if ref.get(name) is not None:
                assert mine.fields.get(name) == ref[name], (rel, i, ref["event"], name)
