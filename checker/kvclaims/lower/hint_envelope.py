"""Read KV hint envelopes and lower each action onto claim events (docs/lowering.md "KV hints";
docs/model.md §4, §9; the table is spec/kvhints.toml).

Input: JSON Lines, one request's hints a line, either a bare envelope as vLLM's KvHintsEnvelope
encodes it (`protocol_version`, `message_id`, `actions` of `action_id`, `action_type`,
`action_version`, `payload`) or a record `{"request_id": ..., "kv_hints": ENVELOPE, "outcomes":
{ACTION_ID: OUTCOME}}` when something outside the runtime answered the hints. Keys are closed: an
unknown key, a missing one or a value of the wrong type is an input error at file:line:column.

Each action is decided, fail-closed:
- an action type that spec/kvhints.toml spells (or a kind's own name) gives the hint kind; any
  other type is `unknown` and lowers to nothing;
- a kind that ends a hold (Demote) needs the claim it ends, which no known payload names: unknown;
- otherwise the hint's claim is submitted, and its outcome (given, else `missing`) lowers as the
  table says: `held` when the runtime holds it, `not held` when the outcome settles that it does
  not, `accepted` for an accepted kind that holds nothing, and `unknown` when the outcome settles
  nothing (missing, deferred). With vLLM as it is every action's outcome is missing.

The lowered claim events are kvclaims Events (kvclaims check reads them written as .kvt); claim
ids are `hint:MESSAGE_ID:ACTION_ID`; a payload listing block hashes (the table's `[payload]` key)
gives the claim's footprint, a leading prefix of that many blocks.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kvclaims import spec as spec_mod
from kvclaims.lower.descriptor import HintTable, load_hint_table
from kvclaims.lower.kvhints import Lowered, _apply
from kvclaims.spec import Spec
from kvclaims.trace.model import Event, InputError

HELD, NOT_HELD, ACCEPTED, UNKNOWN = "held", "not held", "accepted", "unknown"
ENVELOPE_KEYS = ("protocol_version", "message_id", "actions")  # vllm/v1/kv_hints/protocol.py
ACTION_KEYS = ("action_id", "action_type", "action_version", "payload")
RECORD_KEYS = ("request_id", "kv_hints", "outcomes")


@dataclass(frozen=True, slots=True)
class HintAction:
    """One action as read, with where it was read."""

    file: str
    line: int
    message_id: str
    action_id: str
    action_type: str
    action_version: str
    payload: dict[str, Any]
    request_id: str | None = None
    outcome: str | None = None  # None: no answer given (missing)


@dataclass(frozen=True, slots=True)
class HintLowering:
    """What one action lowers onto."""

    action: HintAction
    kind: str | None
    mode: str | None
    outcome: str
    status: str  # held | not held | accepted | unknown
    why: str
    events: tuple[Event, ...] = ()

    @property
    def claim_id(self) -> str:
        return f"hint:{self.action.message_id}:{self.action.action_id}"


# ---- reading -----------------------------------------------------------------------------------
def _column(text: str, key: str) -> int:
    at = text.find(json.dumps(key))
    return at + 1 if at >= 0 else 1


def _closed(obj: Any, keys: tuple[str, ...], required: tuple[str, ...], what: str, file: str,
            lineno: int, text: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InputError(file, lineno, 1, f"{what} must be a JSON object")
    for k in obj:
        if k not in keys:
            raise InputError(file, lineno, _column(text, k),
                             f"{what}: unknown key {k!r} (known: {', '.join(keys)})")
    for k in required:
        if k not in obj:
            raise InputError(file, lineno, 1, f"{what}: missing key {k!r}")
    return obj


def _string(obj: dict[str, Any], key: str, what: str, file: str, lineno: int, text: str) -> str:
    v = obj[key]
    if not isinstance(v, str) or not v:
        raise InputError(file, lineno, _column(text, key),
                         f"{what}: {key} must be a non-empty string")
    return v


def read_envelopes(source: str | Path | IO[str], table: HintTable | None = None
                   ) -> Iterator[HintAction]:
    """The actions of every envelope in a JSON Lines file (or text stream), in order."""
    table = table or load_hint_table()
    if isinstance(source, (str, Path)):
        file = str(source)
        try:
            fh: IO[str] = open(source, encoding="utf-8")
        except OSError as err:
            raise InputError(file, 0, 0, f"cannot read: {err.strerror}") from None
    else:
        file, fh = getattr(source, "name", "<stream>"), source
    with fh:
        for lineno, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(file, lineno, err.colno, f"not JSON: {err.msg}") from None
            yield from _record(obj, table, file, lineno, text)


def _record(obj: Any, table: HintTable, file: str, lineno: int, text: str
            ) -> Iterator[HintAction]:
    request_id, outcomes = None, {}
    if isinstance(obj, dict) and "kv_hints" in obj:
        rec = _closed(obj, RECORD_KEYS, ("kv_hints",), "record", file, lineno, text)
        if "request_id" in rec:
            request_id = _string(rec, "request_id", "record", file, lineno, text)
        outcomes = rec.get("outcomes", {})
        if not isinstance(outcomes, dict) or not all(
                isinstance(v, str) for v in outcomes.values()):
            raise InputError(file, lineno, _column(text, "outcomes"),
                             "record: outcomes must map action ids to outcome words")
        for a, o in outcomes.items():
            if o not in table.outcomes:
                raise InputError(file, lineno, _column(text, "outcomes"),
                                 f"record: outcome {o!r} of action {a!r} is not one of "
                                 f"{', '.join(table.outcomes)}")
        obj = rec["kv_hints"]
    env = _closed(obj, ENVELOPE_KEYS, ENVELOPE_KEYS, "envelope", file, lineno, text)
    _string(env, "protocol_version", "envelope", file, lineno, text)
    message_id = _string(env, "message_id", "envelope", file, lineno, text)
    if not isinstance(env["actions"], list):
        raise InputError(file, lineno, _column(text, "actions"), "envelope: actions must be a list")
    seen: set[str] = set()
    for i, raw in enumerate(env["actions"]):
        what = f"action {i}"
        act = _closed(raw, ACTION_KEYS, ACTION_KEYS, what, file, lineno, text)
        ids = [_string(act, k, what, file, lineno, text) for k in ACTION_KEYS[:3]]
        if not isinstance(act["payload"], dict):
            raise InputError(file, lineno, _column(text, "payload"),
                             f"{what}: payload must be a JSON object")
        if ids[0] in seen:
            raise InputError(file, lineno, 1, f"{what}: action_id {ids[0]!r} used twice")
        seen.add(ids[0])
        yield HintAction(file, lineno, message_id, ids[0], ids[1], ids[2], act["payload"],
                         request_id, outcomes.get(ids[0]))
    for a in outcomes:
        if a not in seen:
            raise InputError(file, lineno, _column(text, "outcomes"),
                             f"record: outcome for action {a!r}, which the envelope lacks")


# ---- lowering ----------------------------------------------------------------------------------
def _kind(table: HintTable, action_type: str) -> str | None:
    if action_type in table.spellings:
        return table.spellings[action_type]
    return action_type if action_type in table.kinds else None


def _footprint(table: HintTable, payload: dict[str, Any]) -> int | None:
    hashes = payload.get(table.payload_blocks)
    if isinstance(hashes, list) and hashes and all(
            isinstance(h, int) and not isinstance(h, bool) for h in hashes):
        return len(hashes)
    return None


def _claim_line(spec: Spec, event: str, claim: str, mode: str, blocks: int | None,
                request: str | None) -> str:
    e = spec.events[event]
    keys = {spec.fields[f].kvt for f in (*e.required, *e.optional) if f in spec.fields}
    line = f"{e.subject} {json.dumps(claim)} {e.verb}"
    if "mode" in keys:  # a claim declaration (kvt keys, docs/kvt.md)
        line += f" mode={mode}"
        if blocks is not None:
            line += f" required={blocks} predicate=leading_prefix_at_least({blocks})"
        if "registration" in keys:
            line += " registration=pre_registered"  # the hint came before its answer
    if request is not None:
        line += f" request={json.dumps(request)}"
    return line


def lower_action(a: HintAction, spec: Spec | None = None,
                 table: HintTable | None = None) -> HintLowering:
    """One action, decided fail-closed (module docstring)."""
    from kvclaims.lower.primitives import events_from_kvt

    spec = spec or spec_mod.load()
    table = table or load_hint_table()
    outcome = a.outcome or table.unanswered
    kind = _kind(table, a.action_type)
    if kind is None:
        return HintLowering(a, None, None, outcome, UNKNOWN,
                            f"action type {a.action_type!r} is not in spec/kvhints.toml")
    k = table.kinds[kind]
    if k.mode is None:
        return HintLowering(a, kind, None, outcome, UNKNOWN,
                            f"a {kind} ends the hold of another claim, and no known payload "
                            "names it")
    oc = table.outcomes[outcome]
    cur = Lowered(spec.claim.initial)
    state, sent = _apply(spec, cur.state, (table.send,))
    state, answered = _apply(spec, state, oc.answer)
    if not oc.decided:
        status, why = UNKNOWN, f"outcome {outcome}: nothing is known to be held"
    elif oc.grants:
        status = HELD if k.holds else ACCEPTED
        why = f"{kind} {outcome}" + ("" if k.holds else ": it holds nothing")
    else:
        status, why = NOT_HELD, f"{kind} {outcome}"
    blocks = _footprint(table, a.payload)
    claim = f"hint:{a.message_id}:{a.action_id}"
    lines = [_claim_line(spec, e, claim, k.mode, blocks, a.request_id)
             for e in (*sent, *answered)]
    events = events_from_kvt(lines, spec, a.file) if lines else ()
    return HintLowering(a, kind, k.mode, outcome, status, why, tuple(events))


def lower_file(source: str | Path | IO[str]) -> list[HintLowering]:
    spec = spec_mod.load()
    table = load_hint_table()
    return [lower_action(a, spec, table) for a in read_envelopes(source, table)]


# ---- command -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """`python -m kvclaims.lower.hint_envelope FILE [--kvt OUT]`: one line per action; exit 0
    when every action is decided, 3 when one is unknown, 2 on an input error."""
    import argparse

    from kvclaims.trace.write import write_kvt

    stream = out or sys.stdout
    ap = argparse.ArgumentParser(prog="python -m kvclaims.lower.hint_envelope",
                                 description="lower KV hint envelopes onto claim events")
    ap.add_argument("file")
    ap.add_argument("--kvt", help="write the lowered claim events here as .kvt")
    args = ap.parse_args(argv)
    try:
        rows = lower_file(args.file)
    except InputError as err:
        print(f"{err}", file=sys.stderr)
        return 2
    for r in rows:
        a = r.action
        print(f"{a.file}:{a.line}: {r.claim_id} {a.action_type} -> {r.kind or '-'} "
              f"({r.mode or '-'}), outcome {r.outcome}: {r.status} ({r.why})", file=stream)
    if args.kvt:
        buf = io.StringIO()
        write_kvt([e for r in rows for e in r.events], buf)
        Path(args.kvt).write_text(buf.getvalue(), encoding="utf-8")
    return 3 if any(r.status == UNKNOWN for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
