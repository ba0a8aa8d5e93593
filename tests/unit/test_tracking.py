"""W&B tracking: offline by default, never blocked by a missing or silent server; what a run logs, read back
from its offline run file."""

from __future__ import annotations

import socket
import time
import warnings

import pytest

from spin_bench.tracking import Tracker, TrackingConfig, choose_mode
from tests.wandb_file import config_and_history, records

IDENTITY = {"study": "s", "method": "spin", "seed": 3}


def metric(value, task="t"):
    return {"task": task, "metric": "acc,none", "value": value, "stderr": None}


def offline(**kw):
    return TrackingConfig(**{"backend": "wandb", "mode": "offline", "project": "p", **kw})


def run_file(directory):
    (path,) = directory.glob("wandb/offline-run-*/run-*.wandb")
    return path


def test_offline_run_carries_config_scores_and_the_suites_average(tmp_path):
    tracker = Tracker(offline(), tmp_path, IDENTITY, {"model": {"name": "tiny"}, "run_info": {"v": 1}}, ["embedded"])
    tracker.log_iteration(0, [metric(0.25), metric(0.75, "u")], average=0.5)
    tracker.log_iteration(1, [metric(0.5), metric(0.5, "u")], average=0.5)
    tracker.finish()
    config, history = config_and_history(run_file(tmp_path))
    assert config["model"] == {"name": "tiny"} and config["run_info"] == {"v": 1}
    assert [(h["iteration"], h["eval/t/acc,none"], h["eval/average"]) for h in history] == [
        (0, 0.25, 0.5),
        (1, 0.5, 0.5),
    ]
    (run,) = [r.run for r in records(run_file(tmp_path)) if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.job_type, run.display_name) == ("s", "spin", f"s/{tmp_path.name}")
    assert "embedded" in run.tags


def test_diagnostics_and_training_curves_go_to_their_own_axes(tmp_path):
    tracker = Tracker(offline(), tmp_path, IDENTITY, {}, [])
    tracker.log_iteration(1, [metric(0.5)], 0.5, {"heldout/rewards/accuracies": 0.75, "pairs": 8})
    tracker.log_training([{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.6, "rewards/margins": 0.1}], first_step=10)
    tracker.finish()
    _, history = config_and_history(run_file(tmp_path))
    assert [h["selfplay/heldout/rewards/accuracies"] for h in history if "iteration" in h] == [0.75]
    assert [(h["train_step"], h["train/loss"]) for h in history if "train_step" in h] == [(11, 0.69), (12, 0.6)]


def test_no_backend_logs_nothing(tmp_path):
    tracker = Tracker(TrackingConfig(backend="none"), tmp_path, IDENTITY, {}, [])
    tracker.log_iteration(0, [metric(0.5)], 0.5)
    tracker.finish()
    assert list(tmp_path.iterdir()) == []


def test_online_without_api_key_falls_back_to_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no netrc / settings with a key in here
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.warns(UserWarning, match="no W&B API key"):
        assert choose_mode(offline(mode="online", timeout_s=1)) == "offline"


def test_unreachable_server_falls_back_quickly(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = Tracker(offline(mode="online", timeout_s=2), tmp_path, IDENTITY, {}, [])
        tracker.log_iteration(0, [metric(1.0)], 1.0)
        tracker.finish()
    assert time.monotonic() - start < 60
    assert any("did not answer" in str(w.message) for w in caught)
    assert run_file(tmp_path).is_file()


def test_failed_run_is_marked_failed(tmp_path):
    tracker = Tracker(offline(), tmp_path, IDENTITY, {}, [])
    tracker.finish(failed=True)
    exits = [r.exit.exit_code for r in records(run_file(tmp_path)) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]
