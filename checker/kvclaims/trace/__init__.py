"""Input and output side: every trace format becomes one stream of :class:`Event` (docs/model.md §5),
or a :class:`PartialTrace` when its order is only partly known."""

from kvclaims.trace.model import Event, InputError, PartialTrace, Skew

__all__ = ["Event", "InputError", "PartialTrace", "Skew"]
