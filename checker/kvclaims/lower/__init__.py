"""Fail-closed lowering of resident KV claims onto runtimes (docs/model.md §9).

descriptor.py loads the anchored runtime descriptors (spec/descriptors/) and the lowering tables
(spec/lowering.toml); relation.py decides Lower(d, a, E, m) and the five-step class (pure);
primitives.py holds the Z3 models of runtime primitives and finds shortest witnesses; anchors.py
verifies anchors against installed packages or source trees (a trace anchor is decided by the
one decision path, kvclaims.run); table.py assembles the runtime × mode table and render.py draws
it (text, JSON, Markdown); prove.py runs the bad-lowering suite; kvrm_proof.py proves the KV-RM
arbiter, and kvrm_transport.py is the merge-staged transport it and the KV-RM runtime share (§10).
commands.py holds the bodies of `kvclaims lower` and `kvclaims prove`.
"""
