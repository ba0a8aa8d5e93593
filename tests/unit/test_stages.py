"""The cached-stage helper: built once, reused, never half-written; named by everything that makes it."""

from __future__ import annotations

import json

import pytest

from spin_bench.stages import LAYOUT, RESUMABLE, cached_dir, content_hash, is_complete, run_stage, work_dir


def test_content_hash_ignores_key_order_and_sees_values():
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_a_stage_is_built_once_then_reused_and_its_marker_says_what_made_it(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "out.txt").write_text("done")

    first = run_stage(tmp_path, "world", {"x": 1}, build, label="arithmetic")
    assert run_stage(tmp_path, "world", {"x": 1}, build, label="arithmetic") == first
    assert len(calls) == 1 and first.parent == tmp_path / "world" and first.name.startswith("arithmetic-")
    assert json.loads((first / "_COMPLETE.json").read_text()) == {"layout": LAYOUT, "x": 1}
    assert run_stage(tmp_path, "world", {"x": 2}, build, label="arithmetic") != first  # other inputs, other stage
    assert len(calls) == 2


def test_a_stage_of_an_older_layout_is_never_matched(tmp_path):
    """The layout is part of every stage's name: a directory written under another layout stays unread."""
    old = tmp_path / "world" / content_hash({"x": 1})  # how a stage of the first layout was named
    old.mkdir(parents=True)
    (old / "_COMPLETE.json").write_text("{}")
    assert run_stage(tmp_path, "world", {"x": 1}, lambda tmp: None) != old


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


def test_a_failed_build_keeps_only_what_a_rerun_resumes_from(tmp_path):
    """A training stage's mid-stage checkpoints (the work directory's `resume/`) survive a failed build and are
    found by the next one; everything else the failed build wrote is gone, and none of it is published."""

    def crash(work):
        (work / RESUMABLE / "checkpoint-4").mkdir(parents=True)
        (work / "half.txt").write_text("half")
        raise RuntimeError("killed mid-stage")

    target = tmp_path / "stage"
    with pytest.raises(RuntimeError):
        cached_dir(target, crash, {})
    assert [p.name for p in work_dir(target).iterdir()] == [RESUMABLE]
    seen = []
    cached_dir(target, lambda work: seen.extend(p.name for p in work.rglob("*")), {})
    assert seen == [RESUMABLE, "checkpoint-4"]
    assert is_complete(target) and not (target / RESUMABLE).exists()  # resume state is not part of the result


def test_an_incomplete_leftover_is_replaced(tmp_path):
    target = tmp_path / "stage"
    target.mkdir()
    (target / "stale.txt").write_text("from a crash before the marker")
    cached_dir(target, lambda tmp: (tmp / "fresh.txt").write_text("fresh"), {})
    assert sorted(p.name for p in target.iterdir()) == ["_COMPLETE.json", "fresh.txt"]
