"""Stage directories: built once, reused, never half-written."""

from __future__ import annotations

import json

import pytest

from spin_bench.cache import cached_dir, content_hash, is_complete


def test_content_hash_ignores_key_order_and_sees_values():
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_built_once_then_reused(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "out.txt").write_text("done")

    target = tmp_path / "stage"
    assert cached_dir(target, build, {"x": 1}) == target
    assert cached_dir(target, build, {"x": 1}) == target
    assert len(calls) == 1
    assert json.loads((target / "_COMPLETE.json").read_text()) == {"x": 1}


def test_a_failed_build_leaves_nothing_and_a_retry_succeeds(tmp_path):
    def crash(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed mid-stage")

    target = tmp_path / "stage"
    with pytest.raises(RuntimeError, match="killed mid-stage"):
        cached_dir(target, crash, {})
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["stage.lock"]  # no temp directory left either
    cached_dir(target, lambda tmp: (tmp / "ok.txt").write_text("ok"), {})
    assert is_complete(target) and (target / "ok.txt").read_text() == "ok"


def test_an_incomplete_leftover_is_replaced(tmp_path):
    target = tmp_path / "stage"
    target.mkdir()
    (target / "stale.txt").write_text("from a crash before the marker")
    cached_dir(target, lambda tmp: (tmp / "fresh.txt").write_text("fresh"), {})
    assert sorted(p.name for p in target.iterdir()) == ["_COMPLETE.json", "fresh.txt"]
