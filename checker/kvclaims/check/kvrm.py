"""KV-RM descriptor obligations K1-K5 (docs/model.md §10), decided from the pager and descriptor events.

The committed descriptor is the claim boundary (choice, docs/model.md §10): per decode step exactly one
descriptor is committed (K1); each of its entries names a block the pager holds bound to that
logical position (K2); the step's transfer groups are disjoint, contiguous on both sides and cover
the descriptor's (source block, staging slot) pairs exactly (K3); a claimed prefix reused in the
step appears whole in the request's row, on the claim's own blocks (K4); and a far-history summary
never stands in for a claim's blocks (K5). K findings are about the runtime's descriptors, so they
are filed against the trace (K4/K5 name the claim) whatever the claims' modes. Functions of the
replay checker: they read and update its state (passed as `rp`); the replay's pool (`block_map`)
says which blocks are a claim's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvclaims.check.predicate import LEADING
from kvclaims.check.verdict import UNKNOWN, VIOLATION
from kvclaims.trace.model import Event

if TYPE_CHECKING:
    from kvclaims.check.context import ReplayContext

PREFIX_OWNER = "prefix:"  # pager owner of a shared prefix block, as opposed to a request id


class State:
    """What the pager and the current descriptor hold while the replay runs."""

    __slots__ = ("binding", "step", "rows", "width", "expected", "covered", "summaries",
                 "commit_ev", "seen")

    def __init__(self) -> None:
        self.binding: dict[int, tuple[str, int]] = {}  # physical block -> (owner, position)
        self.step: int | None = None  # last committed decode step
        self.rows: dict[str, list[int]] = {}  # request -> its row in the current descriptor
        self.width: int | None = None
        self.expected: set[tuple[int, int]] = set()  # (source block, staging slot)
        self.covered: set[tuple[int, int]] = set()
        self.summaries: dict[str, set[int]] = {}  # request -> summarized positions this step
        self.commit_ev: Event | None = None
        self.seen = False


def on_event(rp: ReplayContext, ev: Event) -> None:
    E = rp.E
    st: State = rp.kvrm
    st.seen = True
    k = ev.kind
    f = ev.fields
    if k == E.kvrm_mapped:
        pid = f.get("prefix_id")
        owner = PREFIX_OWNER + str(pid) if pid is not None and f.get("request_id") is None \
            else str(f.get("request_id"))
        st.binding[f["physical_block_id"]] = (owner, f["logical_block_position"])
    elif k == E.kvrm_evicted:
        st.binding.pop(f["physical_block_id"], None)
    elif k == E.kvrm_committed:
        _commit(rp, st, ev)
    else:
        step = f["decode_step"]
        if step != st.step:
            rp._find(VIOLATION, rp.R.k_descriptor, ev,
                     f"step {step} has no committed descriptor (last committed: {st.step}): "
                     "the step is not materialized through one descriptor")
            return
        if k == E.kvrm_group:
            _group(rp, st, ev)
        elif k == E.kvrm_summary:
            _summary(rp, st, ev)
        elif k == E.kvrm_reused:
            _reused(rp, st, ev)


def _close_step(rp: ReplayContext, st: State) -> None:
    missing = st.expected - st.covered
    if missing and st.commit_ev is not None:
        some = sorted(missing)[:4]
        rp._find(VIOLATION, rp.R.k_groups, st.commit_ev,
                 f"the transfer groups of step {st.step} leave {len(missing)} descriptor "
                 f"entries uncovered (e.g. source/slot {some})")
    st.expected = set()
    st.covered = set()
    st.summaries = {}


def _commit(rp: ReplayContext, st: State, ev: Event) -> None:
    R = rp.R
    f = ev.fields
    step = f["decode_step"]
    if st.step is not None and step <= st.step:
        # the duplicate is the violation; the step stays judged against its first descriptor
        rp._find(VIOLATION, R.k_descriptor, ev,
                 f"a second committed descriptor for decode step {step} (last committed "
                 f"{st.step}): exactly one per step")
        return
    if st.commit_ev is not None:
        _close_step(rp, st)
    if st.step is not None and step != st.step + 1:
        rp._find(VIOLATION, R.k_descriptor, ev,
                 f"decode steps {st.step + 1}..{step - 1} have no committed descriptor")
    st.step = step if st.step is None else max(step, st.step)
    st.commit_ev = ev
    batch = f["batch_requests"]
    table = f["block_table"]
    width = f.get("max_blocks_per_sequence")
    st.width = width
    st.rows = {}
    if not isinstance(table, list) or len(table) != len(batch):
        rp._find(VIOLATION, R.k_descriptor, ev,
                 "the descriptor's block table does not have one row per batch slot")
        return
    for slot, (rid, row) in enumerate(zip(batch, table)):
        if not isinstance(row, list):
            rp._find(VIOLATION, R.k_descriptor, ev, f"slot {slot}: the row is not a block list")
            continue
        st.rows[rid] = row
        if width is not None and len(row) > width:
            rp._find(VIOLATION, R.k_descriptor, ev,
                     f"slot {slot} maps {len(row)} blocks, more than the static width {width}")
        for pos, b in enumerate(row):
            if not isinstance(b, int) or isinstance(b, bool):
                rp._find(VIOLATION, R.k_descriptor, ev,
                         f"slot {slot} position {pos}: {b!r} is not a physical block id")
                continue
            if b < 0:
                continue  # unmapped (e.g. summarized): no block, no transfer
            bound = st.binding.get(b)
            if bound is None:
                rp._find(VIOLATION, R.k_live, ev,
                         f"request {rid} position {pos} maps block {b}, which the pager does not "
                         "hold (evicted or freed): a stale mapping", request_id=rid)
            elif bound[1] != pos or (bound[0] != rid and not bound[0].startswith(PREFIX_OWNER)):
                rp._find(VIOLATION, R.k_live, ev,
                         f"request {rid} position {pos} maps block {b}, which the pager holds for "
                         f"{bound[0]} position {bound[1]}: a stale mapping", request_id=rid)
            if width is not None:
                st.expected.add((b, slot * width + pos))
    if width is None and st.rows:
        rp._find(UNKNOWN, R.k_groups, ev,
                 "the descriptor does not state its static width, so staging slots are unknown")


def _contiguous(xs: list[Any]) -> bool:
    return all(isinstance(x, int) for x in xs) and all(
        b == a + 1 for a, b in zip(xs, xs[1:]))


def _group(rp: ReplayContext, st: State, ev: Event) -> None:
    R = rp.R
    src = ev.fields["src_blocks"]
    dst = ev.fields["dst_slots"]
    if not src or len(src) != len(dst):
        rp._find(VIOLATION, R.k_groups, ev,
                 f"a transfer group with {len(src)} sources and {len(dst)} destinations")
        return
    if not _contiguous(src) or not _contiguous(dst):
        side = "source" if not _contiguous(src) else "destination"
        rp._find(VIOLATION, R.k_groups, ev,
                 f"transfer group {src} -> {dst} is not contiguous in {side}: a gapped group")
    for pair in zip(src, dst):
        if st.width is None:
            continue
        if pair in st.covered:
            rp._find(VIOLATION, R.k_groups, ev,
                     f"source block {pair[0]} -> slot {pair[1]} is in two transfer groups: "
                     "overlapping groups")
        elif pair not in st.expected:
            rp._find(VIOLATION, R.k_groups, ev,
                     f"source block {pair[0]} -> slot {pair[1]} is not in the committed "
                     "descriptor")
        st.covered.add(pair)


def _summary(rp: ReplayContext, st: State, ev: Event) -> None:
    f = ev.fields
    st.summaries.setdefault(f["request_id"], set()).update(f["summary_positions"])
    if f.get("counted_as_materialization") is True:
        rp._find(VIOLATION, rp.R.k_summary, ev,
                 "a far-history summary is reported as materializing a claim",
                 claim_id=f.get("claim_id"))


def _required_positions(c: Any) -> range | None:
    pred = c.positions.pred
    if pred is None:
        n = c.declared_required
        return range(n) if n is not None else None
    start = 0 if pred.kind == LEADING else pred.start
    return range(start, start + pred.n)


def _reused(rp: ReplayContext, st: State, ev: Event) -> None:
    R = rp.R
    f = ev.fields
    rid = f["request_id"]
    cid = f["claim_id"]
    c = rp.claims.get(cid)
    if c is None:
        rp._find(VIOLATION, R.k_prefix, ev, f"reuse of {cid}, which is not a claim",
                 claim_id=cid)
        return
    need = _required_positions(c)
    if need is None:
        rp._find(UNKNOWN, R.k_prefix, ev, f"claim {cid} has no predicate, so 'whole' is unknown",
                 claim_id=cid)
        return
    row = st.rows.get(rid)
    if row is None:
        rp._find(VIOLATION, R.k_prefix, ev,
                 f"request {rid} reuses {cid} but is not in step {st.step}'s descriptor",
                 claim_id=cid)
        return
    missing = []
    for pos in need:
        b = row[pos] if pos < len(row) else None
        entry = rp.block_map.get(b) if b is not None and b >= 0 else None
        if entry is None or entry[1] != pos or entry[2] is not c:
            missing.append(pos)
    if not missing:
        if c.state not in rp.responsible:
            rp._find(VIOLATION, R.k_prefix, ev,
                     f"claim {cid} is reused in state {c.state}, not under responsibility",
                     claim_id=cid)
        return
    summarized = st.summaries.get(rid, set())
    if set(missing) <= summarized:
        rp._find(VIOLATION, R.k_summary, ev,
                 f"claim {cid} is reused with positions {missing[:4]}... standing in as a "
                 "far-history summary: a summary is not materialization", claim_id=cid)
    else:
        rp._find(VIOLATION, R.k_prefix, ev,
                 f"claim {cid} is reused by {rid} but positions {missing[:4]} are not in the "
                 "descriptor on the claim's blocks: the prefix is not whole at commit",
                 claim_id=cid)


def finish(rp: ReplayContext) -> None:
    st: State = rp.kvrm
    if st.commit_ev is not None:
        _close_step(rp, st)
