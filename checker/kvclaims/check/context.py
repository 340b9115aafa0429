"""What the replay's plug-ins may read and call of the replay (docs/checking.md, "Layers of check/").

Decides nothing. The replay (check/replay.py) calls the offload, attribution, progress and KV-RM
plug-ins with itself; they see it only through this Protocol, so they import no module above
them and check/ has no import cycle (tests/check/test_check_layers.py). check/replay.py's
`Replay` satisfies it structurally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kvclaims.check.rules.ops import Filed
from kvclaims.check.state import Claim, EventNames, Request, RuleIds
from kvclaims.spec import Spec
from kvclaims.trace.model import Event


class ReplayContext(Protocol):
    """The replay's state and finding sink, as its plug-ins use them."""

    spec: Spec
    R: RuleIds
    E: EventNames
    values: dict[str, Any]
    claims: dict[str, Claim]
    responsible: frozenset[str]
    yielding_modes: frozenset[str]
    allocated: set[int]
    block_map: dict[int, Any]
    usable: int | None
    index: int
    off_tr: Any
    kvrm: Any

    def _find(self, status: str, rule: str, ev: Event, message: str, claim: Claim | None = None,
              *, claim_id: str | None = None, request_id: str | None = None,
              index: int | None = None) -> None: ...

    def _pass(self, claim: Claim, rule: str) -> None: ...

    def _file(self, filed: tuple[Filed, ...], ev: Event | None, c: Claim,
              names: Callable[..., dict[str, Any]] = ..., *args: Any) -> None: ...

    def _mark(self, claim: Claim, rule: str, status: str) -> None: ...

    def _request(self, rid: str) -> Request: ...

    def _discharge_explicit(self, ev: Event) -> None: ...

    def _protected_claims(self) -> list[Claim]: ...

    def _protecting_claims(self) -> list[Claim]: ...

    @staticmethod
    def _blocks_of(c: Claim) -> int: ...
