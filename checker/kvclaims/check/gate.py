"""Evidence gates (`kvclaims check --require NAME`): which requirements a trace positively witnesses.

Decides, per docs/model.md §6, the reference offloadable bundle (eight requirement ids of the reference
gate), the two connector witness gates of the patched-vLLM boundary (observation and failure
outcome), and, for every other protection mode, which rules of the mode's bundle the replay did not
positively witness (status other than pass for the trace's claims). A missing or violated
requirement fails the gate. Requirement ids come from spec/modes.toml; the order of evidence each
needs is written here once.

Every gate is linear in the trace (issue 22 item 4; bench/gates.md): the offload gate is per-claim
state updated per event (:class:`OffloadGateState`), the connector gates make a fixed number of
passes over one claim's records, the mode bundles read the decided statuses.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import lru_cache
from typing import Any, Callable

from kvclaims.check.predicate import parse_predicate
from kvclaims.check.state import EventNames
from kvclaims.check.verdict import PASS, Gate, Report
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

Rec = tuple[int, str, dict[str, Any]]


class GateNames(EventNames):
    """The event names the gates read, each checked against spec/events.toml at start-up."""

    def __init__(self, spec: Spec):
        super().__init__(spec)

        def ev(name: str) -> str:
            if name not in spec.events:
                raise KeyError(f"spec/events.toml lacks {name}")
            return name

        self.transfer_finished = ev("offload_worker_transfer_finished")
        self.job_completed = ev("offload_job_completed")
        self.store_created = ev("offload_store_job_created")
        self.load_created = ev("offload_load_job_created")
        self.load_failed = ev("offload_load_job_failed")
        self.lookup = ev("offload_lookup_result")
        self.finished_pending = ev("offload_request_finished_pending_jobs")
        self.finished_no_pending = ev("offload_request_finished_no_pending_jobs")
        self.sched_restoration_failed = ev("scheduler_resident_claim_restoration_failed")
        self.sched_refused = ev("scheduler_active_request_refused")

_IDENTITY = ("predicate_id", "prefix_id", "reusable_object_id", "cache_identity",
             "request_token_map_id")


class GateRecorder:
    """Observer fed by the replay: keeps the lifecycle, request and connector events gates read.

    Block-level events (victims, block materializations) are not kept, so memory follows the
    number of lifecycle events, not the trace length. The offloadable gate's per-claim state
    (:class:`OffloadGateState`) is updated here, per event, so deciding it reads no history.
    """

    def __init__(self, spec: Spec, names: tuple[str, ...] | None = None):
        """`names`: the `--require` gates to be decided (None: any), so that only what they
        read is kept: the event list for the connector gates, the offload state for the
        offload gate; mode bundles read the decided statuses, nothing recorded."""
        keep = set()
        for name, e in spec.events.items():
            if e.scope in ("claim", "request", "connector", "scheduler", "generic"):
                keep.add(name)
        self.kinds = frozenset(keep)
        self.records: list[Rec] = []
        modes = [spec.canonical_mode(n) for n in names] if names is not None else None
        self.keep_records = modes is None or any(m is None for m in modes)
        self.keep_offload = modes is None or any(
            m is not None and spec.modes[m].gate is not None for m in modes)
        self.offload = OffloadGateState(spec)
        self._n = 0

    @property
    def active(self) -> bool:
        """Whether the gates asked for read recorded events at all."""
        return self.keep_records or self.keep_offload

    def __call__(self, ev: Event) -> None:
        # Ordering position: records keep their relative order, which is all gates compare.
        self._n += 1
        if self.keep_records:
            self.records.append((self._n, ev.kind, ev.fields))
        if self.keep_offload:
            self.offload.add(self._n, ev.kind, ev.fields)


def _is(flag: Any) -> bool:
    return flag is True


@lru_cache(maxsize=None)
def _names(spec: Spec) -> GateNames:
    return GateNames(spec)


def _first(recs: list[Rec], after: int, pred: Callable[[str, dict[str, Any]], bool]) -> int | None:
    for i, kind, f in recs:
        if i > after and pred(kind, f):
            return i
    return None


# ---- offloadable (reference offload gate) -------------------------------------------------------
class _ClaimOffload:
    """What the offloadable gate keeps of one claim id, updated per event: the first position
    naming the claim, the distinct identity values, and the positions (in written order, so
    sorted) of the events the gate's lookups read, per offload generation. Deciding then costs
    a binary search per lookup, never a pass over the history."""

    __slots__ = ("first", "values", "materialized", "offloaded", "by_gen", "answers", "accepted")

    def __init__(self, first: int):
        self.first = first
        self.values: dict[str, set[Any]] = {n: set() for n in _SINGLE}
        self.materialized: list[int] = []
        self.offloaded: list[tuple[int, Any]] = []
        # generation -> kind -> (positions, fields at those positions)
        self.by_gen: dict[Any, dict[str, tuple[list[int], list[dict[str, Any]]]]] = {}
        self.answers: dict[str, list[int]] = {}
        self.accepted: list[tuple[int, dict[str, Any]]] = []


_SINGLE = ("materialization_predicate", "reusable_object_id", "cache_identity",
           "request_token_map_id")
_ACCEPTED, _MATERIALIZED, _OFFLOADED, _GENERATION, _ANSWER = range(5)


def _after(positions: list[int], after: int) -> int | None:
    """The first position greater than `after` (positions ascend), or None."""
    k = bisect_right(positions, after)
    return positions[k] if k < len(positions) else None


class OffloadGateState:
    """The offloadable gate (docs/model.md §6) as per-claim state: :meth:`add` takes each
    recorded event once (its position, kind and fields), :meth:`missing` decides. Decides exactly
    what the gate decided over the whole history: a claim's events are those naming it
    (`claim_id`) or blocked by it (`blocking_claim_ids`), in written order."""

    def __init__(self, spec: Spec):
        N = _names(spec)
        self.spec = spec
        self.N = N
        consts = spec.offload_constants
        self._tiers_from = (None, consts["gpu_tier"])
        self._tiers_to = (None, consts["host_tier"])
        self._accepted = N.accepted
        self._answer_kinds = frozenset(spec.offload_outcome_events.values())
        # What the gate does with an event of each kind it reads beyond identity values.
        self._roles: dict[str, int] = {N.accepted: _ACCEPTED, N.materialized: _MATERIALIZED,
                                       N.offloaded: _OFFLOADED}
        for k in (N.restore_required, N.restored, N.restoration_failed, N.reuse_after_restore):
            self._roles[k] = _GENERATION
        for k in self._answer_kinds:
            self._roles.setdefault(k, _ANSWER)
        self.claims: dict[Any, _ClaimOffload] = {}
        self.any_accepted = False

    def add(self, i: int, kind: str, f: dict[str, Any]) -> None:
        cid = f.get("claim_id")
        blocking = f.get("blocking_claim_ids")
        if kind == self._accepted and cid is not None:
            self.any_accepted = True
        if not blocking:
            if cid is not None:
                self._add(cid, i, kind, f, ())
            return
        owners = [cid] if cid is not None else []
        for b in blocking:
            if b not in owners:
                owners.append(b)
        for owner in owners:
            self._add(owner, i, kind, f, blocking)

    def _add(self, cid: Any, i: int, kind: str, f: dict[str, Any], blocking: Any) -> None:
        c = self.claims.get(cid)
        if c is None:
            c = self.claims[cid] = _ClaimOffload(i)
        values = c.values
        for name in _SINGLE:
            v = f.get(name)
            if v is not None:
                values[name].add(v)
        role = self._roles.get(kind)
        if role is None:
            return
        N = self.N
        if role == _ACCEPTED:
            if f.get("claim_id") == cid:
                c.accepted.append((i, f))
        elif role == _MATERIALIZED:
            if f.get("predicate_materialized") is not False:
                c.materialized.append(i)
        elif role == _OFFLOADED:
            if f.get("cache_tier_from") in self._tiers_from and \
                    f.get("cache_tier_to") in self._tiers_to:
                c.offloaded.append((i, f.get("offload_generation")))
        elif role == _GENERATION:
            gen = f.get("offload_generation")
            per = c.by_gen.get(gen)
            if per is None:
                per = c.by_gen[gen] = {}
            at = per.get(kind)
            if at is None:
                at = per[kind] = ([], [])
            at[0].append(i)
            at[1].append(f)
        if kind in self._answer_kinds:
            if kind == N.refused:
                ok = cid in blocking and f.get("outcome_claim_id", cid) == cid
            else:
                ok = f.get("claim_id") == cid
            if ok:
                c.answers.setdefault(kind, []).append(i)

    def _offload_ends(self, cid: Any, c: _ClaimOffload,
                      ) -> tuple[int | None, int | None, int | None, int | None]:
        """(success_start, success_end, failure_start, failure_end): the first offload whose
        generation restores from the host tier before reuse, and the first whose restoration
        fails with the claim-scoped outcome answered."""
        N = self.N
        consts = self.spec.offload_constants
        outcomes = self.spec.offload_outcome_events
        empty: tuple[list[int], list[dict[str, Any]]] = ([], [])
        success_start = success_end = failure_start = failure_end = None
        for off_i, g in c.offloaded:
            if success_end is not None and failure_end is not None:
                break
            per = c.by_gen.get(g)
            if per is None:
                continue
            rr = _after(per.get(N.restore_required, empty)[0], off_i)
            if rr is None:
                continue
            r_pos, r_fs = per.get(N.restored, empty)
            f_pos, f_fs = per.get(N.restoration_failed, empty)
            restored = _after(r_pos, rr)
            failed = _after(f_pos, rr)
            if restored is not None and failed is None:
                ok_src = r_fs[bisect_left(r_pos, restored)]
                u_pos, u_fs = per.get(N.reuse_after_restore, empty)
                reuse_before = _after(u_pos, rr)
                if (ok_src.get("restoration_source") == consts["restore_source"]
                        and ok_src.get("restored_from_offload_tier") is not False
                        and ok_src.get("cache_tier_from") in (None, consts["host_tier"])
                        and reuse_before is not None and reuse_before > restored):
                    reuse = u_fs[bisect_left(u_pos, reuse_before)]
                    if reuse.get("predicate_satisfied") is not False and success_end is None:
                        success_start, success_end = off_i, reuse_before
            if failed is not None:
                fev = f_fs[bisect_left(f_pos, failed)]
                otype = fev.get("claim_scoped_outcome_type")
                if (isinstance(otype, str) and otype in outcomes
                        and fev.get("outcome_claim_id") == cid
                        and (_is(fev.get("controlled_restoration_unavailable"))
                             or _is(fev.get("injected_restoration_failure")))):
                    out_i = _after(c.answers.get(outcomes[otype], []), failed)
                    restored_after = _after(r_pos, failed)
                    if out_i is not None and restored_after is None and failure_end is None:
                        failure_start, failure_end = off_i, out_i
        return success_start, success_end, failure_start, failure_end

    def missing(self) -> list[str]:
        """The offloadable requirements some accepted claim does not witness, sorted by id."""
        req = self.spec.gates["offloadable"]
        post_hoc = self.spec.values["post_hoc_registration"]
        if not self.any_accepted:
            return sorted(req)
        missing: set[str] = set()
        for cid, c in self.claims.items():
            if not c.accepted:
                continue
            single = {n: len(v) == 1 for n, v in c.values.items()}
            s_start, s_end, f_start, f_end = self._offload_ends(cid, c)
            for acc_i, acc in c.accepted:
                met: dict[str, bool] = {}
                met["pre_registered_accepted_claim"] = (
                    acc.get("claim_registration") != post_hoc and c.first == acc_i)
                met["stable_claim_id_and_fixed_materialization_predicate"] = (
                    single["materialization_predicate"]
                    and parse_predicate(acc.get("materialization_predicate") or "") is not None)
                met["reusable_object_id"] = single["reusable_object_id"]
                met["fixed_cache_identity_and_deterministic_request_token_map"] = (
                    single["cache_identity"] and single["request_token_map_id"])
                mat_i = _after(c.materialized, acc_i)
                met["materialization_predicate"] = (
                    mat_i is not None and met["stable_claim_id_and_fixed_materialization_predicate"])
                met["offload_restorability"] = s_end is not None
                met["restoration_failure_outcome"] = f_end is not None
                met["ordered_lifecycle_events"] = (
                    mat_i is not None and s_end is not None and f_end is not None
                    and acc_i < mat_i < (s_start or 0) and s_end < (f_start or 0))
                missing.update(r for r in req if not met.get(r, False))
        # The reference analyzers list missing requirements sorted by id.
        return sorted(r for r in req if r in missing)


def offloadable_missing(spec: Spec, records: list[Rec]) -> list[str]:
    """The offloadable gate over recorded events (position, kind, fields), in written order."""
    state = OffloadGateState(spec)
    for i, kind, f in records:
        state.add(i, kind, f)
    return state.missing()


# ---- connector witness gates (patched vLLM scheduler boundary) ----------------------------------
def _direction(f: dict[str, Any]) -> tuple[str, ...]:
    t = f.get("transfer_type")
    return tuple(str(x).upper() for x in t) if isinstance(t, (list, tuple)) else ()


_TO_CPU = ("GPU", "CPU")
_TO_GPU = ("CPU", "GPU")


def connector_missing(spec: Spec, records: list[Rec], gate: str) -> list[str]:
    N = _names(spec)
    req = spec.gates[gate]
    V = spec.values
    init = [(i, f) for i, k, f in records
            if k == N.request_initialized and f.get(V["connector_claim_flag"]) is True]
    met: dict[str, bool] = {r: False for r in req}
    if not init:
        return sorted(req)
    cid = init[0][1].get(V["connector_claim_id"]) or init[0][1].get("claim_id")
    recs = [r for r in records if r[2].get("claim_id") == cid
            or r[2].get(V["connector_claim_id"]) == cid]
    init_i = init[0][0]
    met["claim_metadata_before_lifecycle"] = True
    met["ambiguous_claim_cache_identity"] = all(
        len({f.get(n) for _, _, f in recs if f.get(n) is not None}) <= 1 for n in _IDENTITY)
    store = _first(recs, -1, lambda k, f: k == N.store_created)
    store_xfer = store is not None and _first(
        recs, store, lambda k, f: k == N.transfer_finished
        and _direction(f) == _TO_CPU and _is(f.get("success")))
    store_done = store_xfer and _first(recs, store_xfer, lambda k, f: k == N.job_completed
                                       and _is(f.get("is_store")))
    met["store_offload_to_cpu_path"] = bool(store_done)
    met["claim_metadata_ordering"] = store is not None and init_i < store
    hit = _first(recs, -1, lambda k, f: k == N.lookup
                 and (f.get("num_hit_tokens") or 0) > 0 and _is(f.get("will_load_async")))
    load = hit is not None and _first(recs, hit, lambda k, f: k == N.load_created)
    met["reuse_lookup_hit_requiring_load"] = bool(load)
    ok_load = load and _first(recs, load, lambda k, f: k == N.transfer_finished
                              and _direction(f) == _TO_GPU and _is(f.get("success")))
    ok_done = ok_load and _first(recs, ok_load, lambda k, f: k == N.job_completed
                                 and f.get("is_store") is False)
    restored = ok_done and _first(recs, ok_done, lambda k, f: k == N.restored)
    met["cpu_to_gpu_restore_success"] = bool(restored)
    rr = hit is not None and _first(recs, hit, lambda k, f: k == N.restore_required)
    met["restore_required_before_failure"] = bool(rr and load)
    bad_xfer = load and _first(recs, load, lambda k, f: k == N.transfer_finished
                               and _direction(f) == _TO_GPU and f.get("success") is False)
    load_failed = bad_xfer and _first(recs, bad_xfer,
                                      lambda k, f: k == N.load_failed)
    met["controlled_cpu_to_gpu_load_failure"] = bool(load_failed)
    rfail = _first(recs, -1, lambda k, f: k == N.restoration_failed
                   and f.get("outcome_claim_id") == cid
                   and _is(f.get("controlled_restoration_unavailable"))
                   and _is(f.get("failure_injection_flag")))
    met["claim_scoped_restoration_failed"] = rfail is not None
    refusal = rfail is not None and _first(
        recs, rfail, lambda k, f: k == N.refused
        and f.get("outcome_claim_id") == cid and cid in (f.get("blocking_claim_ids") or ()))
    met["fail_closed_active_request_refused"] = bool(refusal)
    s_fail = bad_xfer and _first(recs, bad_xfer, lambda k, f:
                                 k == N.sched_restoration_failed
                                 and f.get("outcome_claim_id") == cid
                                 and _is(f.get("scheduler_side_failure_outcome")))
    met["scheduler_side_restoration_failed"] = bool(s_fail)
    s_ref = _first(recs, -1, lambda k, f: k == N.sched_refused
                   and cid in (f.get("blocking_claim_ids") or ())
                   and _is(f.get("scheduler_side_refusal"))
                   and f.get("native_scheduler_admission_refusal") is not True)
    met["scheduler_side_active_request_refused"] = s_ref is not None
    sched = [f for _, k, f in records if spec.events.get(k) is not None
             and spec.events[k].scope == "scheduler"]
    met["scheduler_side_claim_match"] = bool(sched) and all(f.get("claim_id") == cid for f in sched)
    term = None
    if s_ref is not None:
        rid = [f for i, _, f in recs if i == s_ref][0].get("request_id")
        term = _first(recs, -1, lambda k, f: k in (N.finished_pending,
                                                   N.finished_no_pending)
                      and f.get("request_id") == rid)
    met["scheduler_event_before_or_at_termination"] = (
        s_ref is not None and (term is None or s_ref <= term))
    met["native_scheduler_admission_refusal_misclassified"] = bool(sched) and not any(
        _is(f.get("native_scheduler_admission_refusal")) for f in sched)
    fallback = rfail is not None and _first(recs, rfail,
                                            lambda k, f: k == N.restored)
    met["no_fallback_recompute_counted_as_satisfaction"] = (
        rfail is not None and not fallback and not any(
            _is(f.get("fallback_recompute_counted_as_satisfying_claim")) for _, _, f in recs))
    chain = [init_i, store, store_xfer, hit, rr, load, bad_xfer, s_fail, s_ref, term,
             load_failed, rfail, refusal]
    met["ordered_failure_semantics"] = all(isinstance(x, int) and not isinstance(x, bool)
                                           for x in chain) and all(
        a < b for a, b in zip(chain, chain[1:]))  # type: ignore[operator]
    return sorted(r for r in req if not met.get(r, False))


# ---- mode bundles ---------------------------------------------------------------------------
def bundle_gate(spec: Spec, report: Report, mode: str) -> Gate:
    rules = spec.modes[mode].rules
    claims = [c for c in report.claims if c.mode == mode] or list(report.claims)
    missing, violated = [], []
    for rid in rules:
        statuses = [c.rules.get(rid) for c in claims]
        if any(s == "violation" for s in statuses):
            violated.append(rid)
        if not claims or any(s != PASS for s in statuses):
            missing.append(rid)
    return Gate(bundle=mode, requirements=rules, missing=tuple(missing), violated=tuple(violated))


def evaluate(spec: Spec, name: str, report: Report, records: GateRecorder | list[Rec]) -> Gate:
    """The gate for `--require NAME` (a mode, a mode alias or a connector gate name), from the
    recorder fed during the replay (or a list of recorded events, decided the same way)."""
    if isinstance(records, GateRecorder):
        recorder: GateRecorder | None = records
        records = records.records
    else:
        recorder = None
    mode = spec.canonical_mode(name)
    if name in spec.gates and mode is None:
        if recorder is not None and not recorder.keep_records:
            raise ValueError(f"the recorder was not told that --require {name} is decided")
        missing = connector_missing(spec, records, name)
        return Gate(bundle=name, requirements=spec.gates[name], missing=tuple(missing))
    if mode is None:
        raise KeyError(name)
    gate_name = spec.modes[mode].gate
    if gate_name is not None:
        if recorder is not None and not recorder.keep_offload:
            raise ValueError(f"the recorder was not told that --require {name} is decided")
        missing = (recorder.offload.missing() if recorder is not None
                   else offloadable_missing(spec, records))
        violated = tuple(sorted({f.rule for f in report.findings if f.status == "violation"}))
        return Gate(bundle=mode, requirements=spec.gates[gate_name], missing=tuple(missing),
                    violated=violated)
    return bundle_gate(spec, report, mode)


def gate_names(spec: Spec) -> list[str]:
    named = {g for g in spec.gates if spec.canonical_mode(g) is None}
    return sorted(set(spec.modes) | named)


def reads_records(spec: Spec, name: str) -> bool:
    """Whether the gate for `--require NAME` reads the recorded events in their written order
    (the offload and connector gates) rather than the decided claim statuses (mode bundles)."""
    mode = spec.canonical_mode(name)
    return mode is None or spec.modes[mode].gate is not None
