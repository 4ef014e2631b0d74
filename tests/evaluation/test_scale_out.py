"""Cross-validation folds scale out through joblib's backends, a local Dask cluster included."""

import numpy as np
import pytest
from joblib import parallel_backend

from survseg.evaluation.benchmark import benchmark
from tests.conftest import MeanUptake, sphere_cohort

distributed = pytest.importorskip("distributed", reason="install survseg[dask] for this test")


def test_benchmark_folds_on_local_dask_cluster():
    X, y = sphere_cohort(n=18, seed=7)
    models = {"uptake": MeanUptake(), "whole": MeanUptake(use_mask=False)}
    serial = benchmark(models, X, y, cv=3, n_bootstrap=50)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        parallel_backend("dask"),
    ):
        on_dask = benchmark(models, X, y, cv=3, n_bootstrap=50, n_jobs=-1)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(on_dask.table["cindex"], serial.table["cindex"])
    np.testing.assert_allclose(on_dask.predictions["risk"], serial.predictions["risk"])
