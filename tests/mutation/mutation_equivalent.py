"""Mutants claimed equivalent (they survive because the model itself allows them), each with its
reason; bench/mutation.md repeats every reason. At most 2% of a rule's mutants (mutation_kill)."""

from __future__ import annotations

# mutant id (Mutant.id) -> why the model gives it the seed's verdict
EQUIVALENT: dict[str, str] = {}
