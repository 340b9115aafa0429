"""FILES and DIRS to the ordered list of traces (kvclaims.fleet.inputs; docs/fleet.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims.fleet.inputs import KNOWN_SUFFIXES, NoTraces, expand

NAMES = st.text(alphabet="abcXYZ_-.0", min_size=1, max_size=6).filter(
    lambda s: s not in (".", ".."))
SUFFIXES = st.sampled_from([*KNOWN_SUFFIXES, ".json", ".md", ".toml", ".kvt.bak", ".gz", ""])
TREE = st.lists(st.tuples(st.lists(NAMES, max_size=3), NAMES, SUFFIXES), min_size=1,
                max_size=12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=TREE)
def test_a_directory_is_every_known_trace_under_it_in_sorted_order(tree, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    made: set[tuple[str, ...]] = set()
    for dirs, stem, suffix in tree:
        d = root.joinpath(*dirs)
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / (stem + suffix)).write_text("")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # a name used both as a file and as a directory
        made.add((*dirs, stem + suffix))
    want = sorted(p for p in made if p[-1].endswith(KNOWN_SUFFIXES)
                  and (root.joinpath(*p)).is_file())
    if not want:
        with pytest.raises(NoTraces):
            expand([str(root)])
        return
    got, directories = expand([str(root)])
    assert directories
    assert [tuple(Path(g).relative_to(root).parts) for g in got] == want
    # The same tree gives the same list, and a named file is kept as named, in place.
    assert expand([str(root)])[0] == got
    first = str(root.joinpath(*want[0]))
    assert expand([first, str(root), first])[0] == [first, *got, first]


def test_a_named_file_is_checked_whatever_its_name(tmp_path: Path) -> None:
    odd = tmp_path / "trace.txt"
    odd.write_text("")
    assert expand([str(odd), "-", str(tmp_path / "missing.kvt")]) == (
        [str(odd), "-", str(tmp_path / "missing.kvt")], False)


def test_gzip_variants_are_picked_up(tmp_path: Path) -> None:
    for name in ("a.kvt.gz", "b.jsonl.gz", "c.kvbatches.gz", "d.json.gz"):
        (tmp_path / name).write_bytes(b"")
    got = [os.path.basename(p) for p in expand([str(tmp_path)])[0]]
    assert got == ["a.kvt.gz", "b.jsonl.gz", "c.kvbatches.gz"]
