"""The one atomic writer: all or nothing, no leftovers, ordinary permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from rdbpfn.atomic import atomic_write, atomic_write_json, atomic_write_text


def test_failed_write_keeps_the_previous_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    atomic_write(path, lambda stream: torch.save({"a": torch.ones(3)}, stream))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(path, lambda stream: torch.save({"a": Unpicklable()}, stream))
    assert torch.equal(torch.load(path)["a"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_new_files_get_the_umask_permissions_of_a_plain_open(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        written = atomic_write_text(tmp_path / "a" / "b.txt", "hello")
        (tmp_path / "plain.txt").write_text("hello")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
    assert written.read_text() == "hello"


def test_json_is_sorted_indented_and_newline_terminated(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "x.json", {"b": 1, "a": [1.5, None]})
    text = path.read_text()
    assert text == json.dumps({"a": [1.5, None], "b": 1}, indent=2) + "\n"
