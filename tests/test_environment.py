"""The CLI's environment: library caches under the project's cache directory, offline when nothing needs the hub."""

from __future__ import annotations

import os

import pytest

from spin_bench.environment import cache_env, configure
from tests.conftest import make_cfg

KEYS = [*cache_env("/x"), "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"]


@pytest.fixture
def clean_env(monkeypatch):
    """None of the variables set; whatever `configure` sets is undone after the test."""
    for key in KEYS:
        monkeypatch.setenv(key, "")  # records the original value (or its absence) for the undo
        monkeypatch.delenv(key)


def test_embedded_default_is_offline_and_caches_in_the_project(clean_env, tmp_path):
    cfg = make_cfg(tmp_path)
    configure(cfg)
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["HF_DATASETS_OFFLINE"] == "1"
    for key in cache_env(cfg.paths.cache_dir):
        assert os.environ[key].startswith(str(tmp_path / ".cache")), key


def test_paper_scale_may_reach_the_hub(clean_env, tmp_path):
    configure(make_cfg(tmp_path, "experiment=paper"))
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["HF_HOME"] == str(tmp_path / ".cache" / "hf")


def test_variables_already_set_are_kept(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", "/somewhere/else")
    configure(make_cfg(tmp_path))
    assert os.environ["HF_HOME"] == "/somewhere/else"
