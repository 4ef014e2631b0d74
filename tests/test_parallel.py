"""survseg's parallel loops on joblib's backends: fallbacks, memmaps by reference, threads.

Local Dask and Ray clusters stand in for remote ones: a job that runs there receives what a
remote worker would (pickled arguments), so a memory-mapped cohort must arrive as a memmap of
the same file, not as a copy of its content.
"""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config

from survseg._parallel import MemmapRef, by_reference, parallel_run
from survseg.data.cohort import load_cohort, save_cohort
from tests.conftest import MeanUptake, sphere_cohort

ROOT = Path(__file__).resolve().parents[1]


def _probe(X):
    """What a worker received: its type, file, process, content and thread limits."""
    import torch
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info()]
    return {
        "memmap": isinstance(X, np.memmap),
        "filename": getattr(X, "filename", None),
        "pid": os.getpid(),
        "pet_sum": float(np.asarray(X["pet"], np.float64).sum()),
        "torch_threads": torch.get_num_threads(),
        "blas_threads": max(blas) if blas else None,
    }


@pytest.fixture
def memmapped(tmp_path):
    X, y = sphere_cohort(n=12, seed=3)
    save_cohort(tmp_path / "X.npy", X)
    return load_cohort(tmp_path / "X.npy"), y, tmp_path / "X.npy"


def test_memmap_reference_reopens_the_same_region(memmapped):
    X, _, path = memmapped
    part = X[3:8]  # a view: the region starts after the file header and 3 records
    ref = MemmapRef.from_array(part)
    assert ref.filename == os.fspath(path) and ref.shape == (5,)
    assert ref.offset == X.offset + 3 * X.dtype.itemsize
    payload = pickle.dumps(ref)
    assert len(payload) < 2_000 < part.nbytes  # the path travels, not the data
    back = pickle.loads(payload)
    assert isinstance(back, np.memmap) and back.mode == "r"
    np.testing.assert_array_equal(back["pet"], np.asarray(X["pet"][3:8]))
    np.testing.assert_array_equal(back["age"], X["age"][3:8])
    # a scheduler that unpickles and re-pickles (Dask's) passes the reference on
    again = pickle.loads(pickle.dumps(back))
    assert again.filename == os.fspath(path) and len(pickle.dumps(back)) < 2_000
    copy = back[[0, 2]]  # a copy no longer maps the file: its values travel
    restored = pickle.loads(pickle.dumps(copy))
    assert not isinstance(restored, np.memmap)
    np.testing.assert_array_equal(restored["pet"], np.asarray(X["pet"][[3, 5]]))
    # not mapped, or not contiguous: sent as they are
    assert by_reference(X[::2]) is not None and MemmapRef.from_array(X[::2]) is None
    in_memory = np.asarray(X).copy()
    assert by_reference(in_memory) is in_memory and by_reference("text") == "text"


def test_missing_file_on_a_worker_names_it(memmapped, tmp_path):
    X, _, path = memmapped
    payload = pickle.dumps(MemmapRef.from_array(X))
    del X
    path.rename(tmp_path / "moved.npy")
    with pytest.raises(FileNotFoundError, match="X.npy is not readable on this worker"):
        pickle.loads(payload)


def test_generator_modes_fall_back_on_a_backend_without_them():
    tasks = [delayed(pow)(i, 2) for i in range(5)]
    with parallel_config(backend="multiprocessing", n_jobs=2):
        with pytest.raises(ValueError, match="does not support return_as"):
            Parallel(return_as="generator")(tasks)
        for mode in ("generator", "generator_unordered"):
            out = parallel_run(iter(tasks), return_as=mode)
            assert not isinstance(out, list)
            assert sorted(out) == [0, 1, 4, 9, 16]
    assert parallel_run(tasks, n_jobs=1, return_as="generator_unordered") is not None
    with pytest.raises(ValueError, match="return_as must be"):
        parallel_run(tasks, return_as="dict")


def test_workers_do_not_oversubscribe_threads(memmapped):
    X, _, _ = memmapped
    out = parallel_run([delayed(_probe)(X) for _ in range(2)], n_jobs=2)
    expected = max(1, os.cpu_count() // 2)
    assert {o["torch_threads"] for o in out} == {expected}
    assert all(o["blas_threads"] in (None, expected) for o in out)
    assert all(o["pid"] != os.getpid() for o in out)
    with parallel_config(backend="loky", inner_max_num_threads=1):
        assert parallel_run([delayed(_probe)(X)] * 2, n_jobs=2)[0]["torch_threads"] == 1


# --- Dask ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="install survseg[dask]")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_receives_memmapped_cohorts_by_reference(dask_client, memmapped):
    X, _, path = memmapped
    with parallel_config(backend="dask"):
        out = list(
            parallel_run([delayed(_probe)(X) for _ in range(2)], n_jobs=-1, return_as="generator")
        )
    assert all(o["memmap"] and o["filename"] == os.fspath(path) for o in out)
    assert out[0]["pet_sum"] == pytest.approx(float(np.asarray(X["pet"], np.float64).sum()))
    assert all(o["pid"] != os.getpid() for o in out)
    assert {o["torch_threads"] for o in out} == {max(1, os.cpu_count() // 2)}


def test_fold_ensemble_on_dask_equals_serial(dask_client, memmapped):
    from survseg.estimators.ensemble import FoldEnsemble

    X, y, _ = memmapped
    serial = FoldEnsemble(MeanUptake(), cv=3, random_state=0).fit(X, y)
    with parallel_config(backend="dask"):
        on_dask = FoldEnsemble(MeanUptake(), cv=3, random_state=0, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(on_dask.oof_risk_, serial.oof_risk_)
    np.testing.assert_allclose(on_dask.predict(X), serial.predict(X))


# --- Ray ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray", reason="install ray for the Ray backend tests")
    from ray.util.joblib import register_ray

    # Ray's workers do not inherit sys.path: give them this checkout's survseg and tests (the
    # test modules are imported by pytest from tests/ as top-level modules)
    before = os.environ.get("PYTHONPATH")
    paths = (os.fspath(ROOT), os.fspath(ROOT / "tests"), before)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_ray()
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = before


def test_ray_runs_generator_modes_and_gets_memmaps_by_reference(ray_backend, memmapped):
    X, _, path = memmapped
    with parallel_config(backend="ray"):
        with pytest.raises(ValueError, match="does not support return_as"):
            Parallel(n_jobs=2, return_as="generator")(delayed(pow)(i, 2) for i in range(2))
        out = list(
            parallel_run((delayed(_probe)(X) for _ in range(2)), n_jobs=2, return_as="generator")
        )
    assert all(o["memmap"] and o["filename"] == os.fspath(path) for o in out)
    assert all(o["pid"] != os.getpid() for o in out)
    assert {o["torch_threads"] for o in out} == {max(1, os.cpu_count() // 2)}


@pytest.mark.scale_out
def test_radiomics_and_grid_search_over_radiomics_cox_on_ray(ray_backend, memmapped):
    # the docs' example (extraction on Ray) and GridSearchCV, whose refit runs RadiomicsCox's
    # extraction under the Ray backend in this process
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

    from survseg.estimators.radiomics_cox import RadiomicsCox
    from survseg.radiomics import RadiomicsExtractor

    X, y, _ = memmapped
    extractor = RadiomicsExtractor(
        image_types=("original",),
        feature_classes=("firstorder", "shape"),
        bin_width={"pet": 0.1, "ct": 0.02},
        cache=False,  # every extraction below runs, none is served from the cache
    )
    serial_features = extractor.fit_transform(X)
    model = RadiomicsCox(extractor=extractor, n_alphas=5, cv=2, random_state=0)
    serial_scores = cross_val_score(model, X, y, cv=KFold(2))
    with parallel_config(backend="ray"):
        features = extractor.set_params(n_jobs=2).fit_transform(X)
        search = GridSearchCV(
            model.set_params(extractor__n_jobs=None),
            {"correlation_threshold": [0.7]},
            cv=KFold(2),
            n_jobs=2,
        ).fit(X, y)
    np.testing.assert_allclose(features, serial_features)
    np.testing.assert_allclose(search.cv_results_["split0_test_score"], serial_scores[0])
    np.testing.assert_allclose(search.cv_results_["split1_test_score"], serial_scores[1])
