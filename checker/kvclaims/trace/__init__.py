"""Input and output side: every trace format becomes one stream of :class:`Event` (MODEL.md §5)."""

from kvclaims.trace.model import Event, InputError

__all__ = ["Event", "InputError"]
