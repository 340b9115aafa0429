"""Checking many traces at once: a fleet's archived streams (docs/fleet.md).

Nothing here decides a rule. Each file is one shard and is decided by THE decision path,
:func:`kvclaims.run.decide_path`, in this process (`--jobs 1`), in worker processes
(:mod:`kvclaims.fleet.pool`) or as Ray tasks (:mod:`kvclaims.fleet.ray_tasks`); the reports come
back in the input order and are rendered by kvclaims.report exactly as for one file.

- :mod:`kvclaims.fleet.inputs`: FILES and DIRS to the ordered list of files;
- :mod:`kvclaims.fleet.shards`: what a shard is, and a shard that could not be decided;
- :mod:`kvclaims.fleet.summary`: the closing line (text) or `"kind": "summary"` object (JSON).
"""
