"""Loading the pytest plug-in imports nothing of kvclaims beyond the package and the plug-in
module, nor its heavy dependencies: its cost at every pytest start stays near nothing
(bench/startup.md measures it)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("kvclaims.", "rich", "msgspec", "z3", "lark", "hypothesis", "click")


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, json, pytest; before = set(sys.modules); import kvclaims.pytest_plugin; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    new = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True, timeout=120).stdout)
    assert "kvclaims.pytest_plugin" in new
    heavy = [m for m in new if m.startswith(HEAVY) and m != "kvclaims.pytest_plugin"]
    assert heavy == []

