"""PatientError and PatientWarning keep naming the right patients after slicing and ids."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from survseg.data import PatientError, PatientWarning, check_cohort
from survseg.data.errors import naming_patients, rows_of
from survseg.estimators import FoldEnsemble
from survseg.evaluation.benchmark import benchmark
from tests.conftest import MeanUptake, sphere_cohort


def test_message_names_one_or_several_patients():
    assert str(PatientError("bad for {patient}.", patient=3)) == "bad for patient 3."
    assert str(PatientError("bad for {patient}.", patient=[2, 5])) == "bad for patients [2, 5]."
    many = PatientError("bad for {patient}.", patient=range(12))
    assert str(many).endswith("patients [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] and 2 more.")
    assert isinstance(many, ValueError) and many.rows == list(range(12))


def test_braces_in_the_message_need_no_escaping():
    err = PatientError("field '{x}' of {patient}: {'a': 1}", patient=1)
    assert str(err) == "field '{x}' of patient 1: {'a': 1}"


def test_rows_of_a_slice_become_rows_of_the_cohort_then_ids():
    err = PatientError("empty for {patient}; see {first}.", patient=[0, 2], first=2)
    index = np.array([4, 9, 11])
    moved = err.in_cohort(index, "fold 2")
    assert str(moved) == "fold 2: empty for patients [4, 11]; see patient 11."
    assert err.in_cohort(np.isin(np.arange(12), index)).rows == [4, 11]  # a boolean mask
    ids = [f"HN-{i:02d}" for i in range(12)]
    named = moved.with_ids({None: ids})
    assert str(named) == (
        "fold 2: empty for patients ['HN-04' (row 4), 'HN-11' (row 11)]; "
        "see patient 'HN-11' (row 11)."
    )
    assert moved.with_ids({"test": ids}) is moved  # another cohort's ids do not apply


def test_pickles_for_joblib_workers():
    err = PatientError("bad for {patient}.", context="fold 1", cohort="test", patient=[1, 3])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is PatientError
    assert (str(back), back.rows, back.cohort) == (str(err), [1, 3], "test")


def test_context_managers_keep_the_traceback():
    def fail():
        raise PatientError("bad for {patient}.", patient=1)

    with pytest.raises(PatientError, match=r"^fold 3: bad for patient 'h' \(row 7\)\.$") as info:
        with naming_patients({None: list("abcdefghij")}):
            with rows_of([5, 7, 9], "fold 3"):
                fail()
    assert info.traceback[-1].name == "fail"


def _cohort_with_empty_mask(row, n=12):
    X, y = sphere_cohort(n=n, seed=3)
    X["mask"][row] = 0
    return X, y


def test_warnings_are_renamed_like_errors_and_others_pass_unchanged():
    with pytest.warns(Warning) as record:
        with naming_patients({None: ["A", "B", "C", "D"]}):
            with rows_of([2, 3], "fold 1"):
                warnings.warn(
                    PatientWarning("NaN features for {patient}.", patient=1), stacklevel=1
                )
                warnings.warn("unrelated", RuntimeWarning, stacklevel=1)
    (patient,) = [w for w in record if issubclass(w.category, PatientWarning)]
    assert str(patient.message) == "fold 1: NaN features for patient 'D' (row 3)."
    (other,) = [w for w in record if w.category is RuntimeWarning]
    assert str(other.message) == "unrelated" and other.filename == __file__


def test_warnings_of_a_block_that_raises_are_not_lost():
    with pytest.warns(PatientWarning, match="patient 7") as record:
        with pytest.raises(PatientError, match="patient 8"):
            with rows_of([7, 8]):
                warnings.warn(PatientWarning("first {patient}", patient=0), stacklevel=1)
                raise PatientError("then {patient}", patient=1)
    assert len(record) == 1


def test_caller_filters_still_decide():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatientWarning)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("ignore", PatientWarning)
            with rows_of([4]):
                warnings.warn(PatientWarning("x {patient}", patient=0), stacklevel=1)
    assert seen == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", PatientWarning)
        with pytest.raises(PatientWarning, match="patient 4"):
            with rows_of([4]):
                warnings.warn(PatientWarning("x {patient}", patient=0), stacklevel=1)


def test_benchmark_names_the_cohort_row_not_the_fold_row():
    X, y = _cohort_with_empty_mask(7)
    with pytest.raises(
        ValueError, match=r"^mean, fold \d: mask field 'mask' is empty for patient 7\.$"
    ):
        benchmark({"mean": MeanUptake()}, X, y, cv=3, n_bootstrap=10)


def test_fold_ensemble_names_the_cohort_row():
    X, y = _cohort_with_empty_mask(10)
    with pytest.raises(ValueError, match=r"^fold \d: mask field 'mask' is empty for patient 10\.$"):
        FoldEnsemble(MeanUptake(), cv=3).fit(X, y)


def test_unsliced_checks_name_the_row():
    X, _ = _cohort_with_empty_mask(4)
    with pytest.raises(PatientError, match=r"^mask field 'mask' is empty for patient 4\.$"):
        check_cohort(X, require_mask=True)


def test_module_examples_run():
    import doctest

    import survseg.data.errors

    assert doctest.testmod(survseg.data.errors).failed == 0
