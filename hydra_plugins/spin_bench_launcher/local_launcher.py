"""The default launcher of spin-bench (conf/hydra/launcher/local.yaml): Hydra's joblib launcher, starting the
jobs in `spin_bench.cli.launcher.busy_order` so that no worker waits for a base model another one is training.
The results go back to the sweeper in its own order, so that a sweeper that matches them to its trials (Optuna)
still can."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

from spin_bench.cli.launcher import busy_order


class LocalLauncher(JoblibLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        order = busy_order(job_overrides)
        returns = super().launch([job_overrides[i] for i in order], initial_job_idx)
        launched_at = {index: position for position, index in enumerate(order)}
        return [returns[launched_at[index]] for index in range(len(order))]
