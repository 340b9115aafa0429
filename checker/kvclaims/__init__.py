"""kvclaims: a formal model and trace checker for resident KV claims (docs/model.md §1).

Public entry points: :func:`kvclaims.check.replay.check_events` decides a stream of events,
:mod:`kvclaims.trace` reads and writes traces, :mod:`kvclaims.spec` is the model as data.
"""

__version__ = "0.1.0"
