"""The results store contract and W&B: offline by default, never blocked by a missing or silent server."""

from __future__ import annotations

import socket
import time
import warnings

import pytest
from omegaconf import OmegaConf

from spin_bench.report import results_table
from spin_bench.tracking import RESULT_KEYS, ResultsStore, Tracker, choose_wandb_mode
from tests.wandb_file import config_and_history


def row(iteration=0, value=0.5, metric="acc,none"):
    return {"study": "s", "method": "spin", "seed": 0, "iteration": iteration, "task": "t", "metric": metric,
            "value": value, "stderr": 0.1, "checkpoint": "/x"}  # fmt: skip


def test_store_upserts_instead_of_duplicating(tmp_path):
    store = ResultsStore(tmp_path / "results.jsonl")
    store.upsert([row(10, 0.4), row(0, 0.1), row(2, 0.2)])
    store.upsert([row(2, 0.3)])  # the same (study, method, seed, iteration, task, metric) logged again
    assert [(r["iteration"], r["value"]) for r in store.rows()] == [(0, 0.1), (2, 0.3), (10, 0.4)]


def test_store_rejects_rows_missing_contract_keys(tmp_path):
    store = ResultsStore(tmp_path / "results.jsonl")
    bad = row()
    del bad["checkpoint"]
    with pytest.raises(ValueError, match=r"lacks keys \['checkpoint'\]"):
        store.upsert([bad])
    assert not store.path.exists()


def test_results_table_pivots_tasks_and_averages():
    table = results_table([row(0, 0.25), row(0, 0.75, metric="exact_match,strict-match")])
    assert "t acc" in table and "t exact_match" in table
    assert "50.0" in table  # average of 25 and 75


def logger(**kw):
    return OmegaConf.create({"backend": "wandb", "mode": "offline", "project": "p", "entity": None, "tags": [], **kw})


def test_offline_run_carries_config_versions_and_metrics(tmp_path):
    identity = {"study": "s", "method": "spin", "seed": 3}
    tracker = Tracker(logger(), tmp_path, identity, {"model": {"name": "tiny"}, "run_info": {"v": 1}}, ["embedded"])
    tracker.log_iteration(0, [{"task": "t", "metric": "acc,none", "value": 0.25, "stderr": None}], "/ckpt")
    tracker.log_iteration(1, [{"task": "t", "metric": "acc,none", "value": 0.5, "stderr": None}], "/ckpt1")
    tracker.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    config, history = config_and_history(run_file)
    assert config["model"] == {"name": "tiny"} and config["run_info"] == {"v": 1}
    assert [(h["iteration"], h["eval/t/acc,none"]) for h in history] == [(0, 0.25), (1, 0.5)]
    assert [h["eval/average"] for h in history] == [0.25, 0.5]  # the mean over task metrics (one here)
    assert [r["checkpoint"] for r in tracker.store.rows()] == ["/ckpt", "/ckpt1"]
    assert set(tracker.store.rows()[0]) == set(RESULT_KEYS)


def test_diagnostics_and_training_curves_go_to_their_own_axes(tmp_path):
    tracker = Tracker(logger(), tmp_path, {"study": "s", "method": "spin", "seed": 0}, {}, [])
    metrics = [{"task": "t", "metric": "acc,none", "value": 0.5, "stderr": None}]
    tracker.log_iteration(1, metrics, "/c1", {"heldout/rewards/accuracies": 0.75, "pairs": 8})
    tracker.log_iteration(1, metrics, "/c1", {"heldout/rewards/accuracies": 0.5, "pairs": 8})  # a rerun replaces
    tracker.log_training([{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.6, "rewards/margins": 0.1}], first_step=10)
    tracker.finish()
    (diagnostics,) = tracker.diagnostics.rows()
    assert diagnostics["iteration"] == 1 and diagnostics["heldout/rewards/accuracies"] == 0.5
    _, history = config_and_history(next(tmp_path.glob("wandb/offline-run-*/run-*.wandb")))
    assert [h["selfplay/heldout/rewards/accuracies"] for h in history if "iteration" in h] == [0.75, 0.5]
    curves = [(h["train_step"], h["train/loss"]) for h in history if "train_step" in h]
    assert curves == [(11, 0.69), (12, 0.6)]


def test_online_without_api_key_falls_back_to_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no netrc / settings with a key in here
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.warns(UserWarning, match="no W&B API key"):
        assert choose_wandb_mode(logger(mode="online", timeout_s=1)) == "offline"


def test_unreachable_server_falls_back_quickly(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = Tracker(
            logger(mode="online", timeout_s=2), tmp_path, {"study": "s", "method": "m", "seed": 0}, {}, []
        )
        tracker.log_iteration(0, [{"task": "t", "metric": "acc,none", "value": 1.0, "stderr": None}], "/c")
        tracker.finish()
    assert time.monotonic() - start < 60
    assert any("did not answer" in str(w.message) for w in caught)
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))


def test_failed_run_is_marked_failed(tmp_path):
    tracker = Tracker(logger(), tmp_path, {"study": "s", "method": "m", "seed": 0}, {}, [])
    tracker.finish(failed=True)
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    from tests.wandb_file import records

    exits = [r.exit.exit_code for r in records(run_file) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]
