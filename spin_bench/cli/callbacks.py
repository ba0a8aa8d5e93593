"""The Hydra callback of conf/hydra/default.yaml: a study's report, once its runs have ended."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from spin_bench import ranks
from spin_bench.paths import configure_environment

log = logging.getLogger(__name__)


class StudyReport(Callback):
    """After the last job of a multirun (or the one job of a run): runs/<study>/report.md and its figures, and
    the study's score table printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.report(config)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.report(config)

    @staticmethod
    def report(config: DictConfig) -> None:
        if not ranks.is_main():  # every rank of a torchrun study ends here; one writes the report
            return
        # matplotlib's cache in the project, also when the jobs ran in other processes (joblib, SLURM)
        configure_environment(Path(config.paths.cache_dir), offline=True)
        from spin_bench.analysis.report import write_report

        study_dir = Path(config.paths.study_dir)
        try:
            summary = write_report(study_dir)
        except Exception:  # Hydra turns it into a warning, easy to miss at the end of a long log
            log.exception(
                "the runs of %s are complete, but its report failed; `spin-bench-report %s` retries",
                config.study,
                study_dir,
            )
            raise
        print(f"\n=== study {config.study}: scores in % (iteration 0 = the base model) ===\n{summary}")
        print(f"\ntable: {study_dir / 'report.md'}\nplot: {study_dir / 'scores.png'}")
