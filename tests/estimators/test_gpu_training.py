"""GPU-only checks (``pytest -m gpu`` on a CUDA machine; skipped elsewhere): mixed-precision
training of both deep models, CPU and GPU giving the same predictions from the same weights,
and a GPU-trained estimator unpickling into a CPU one."""

import pickle

import numpy as np
import pytest
import torch

from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.deepmts import DeepMTSRegressor
from tests.tiny_models import ADAMSS_NETWORK, DEEPMTS_NETWORK

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cohort():
    return make_petct_cohort(12, shape=(24, 24, 24), random_state=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeepMTSRegressor(
            network_params=DEEPMTS_NETWORK,
            max_iter=4,
            batch_size=4,
            amp=True,
            device="cuda",
            intensity={"pet": "zscore", "ct": "zscore"},
            random_state=0,
        ),
        lambda: AdaMSSRegressor(
            network_params=ADAMSS_NETWORK,
            radiomics=False,
            max_iter=4,
            amp=True,
            device="cuda",
            intensity={"pet": "zscore", "ct": "window"},
            random_state=0,
        ),
    ],
    ids=["DeepMTS", "AdaMSS"],
)
def test_amp_training_on_gpu_and_cpu_round_trip(cohort, make):
    X, y = cohort
    est = make().fit(X, y)
    assert next(est.network_.parameters()).is_cuda
    risk_gpu = est.predict(X)
    assert np.isfinite(risk_gpu).all()
    # the same weights on the CPU predict the same risks (up to fp32 reduction order)
    cpu = pickle.loads(pickle.dumps(est)).set_params(device="cpu")
    np.testing.assert_allclose(cpu.predict(X), risk_gpu, rtol=1e-3, atol=1e-4)
    assert torch.cuda.max_memory_allocated() > 0
