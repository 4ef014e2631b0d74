"""Memory-mapped cohorts: chunked field reads, and pages released after a full pass."""

import os

import numpy as np
import pytest

from survseg.data.cohort import load_cohort, save_cohort, volumes
from survseg.data.mapped import mapped_file, read_field, release_pages
from survseg.data.validation import check_cohort

SMAPS = "/proc/self/smaps"
needs_smaps = pytest.mark.skipif(not os.path.exists(SMAPS), reason="needs Linux /proc/self/smaps")


def _cohort_file(tmp_path, n=20, shape=(24, 24, 24)):
    rng = np.random.default_rng(0)
    mask = np.zeros((n, *shape), np.uint8)
    mask[:, 8:14, 8:14, 8:14] = 1
    X = volumes(
        pet=rng.gamma(2.0, 1.0, (n, *shape)).astype(np.float32),
        ct=rng.normal(0, 100, (n, *shape)).astype(np.float32),
        mask=mask,
        age=rng.uniform(40, 80, n),
    )
    path = tmp_path / "cohort.npy"
    save_cohort(path, X)
    return path, X


def _resident_kib(path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    target = os.path.realpath(path)
    with open(SMAPS) as fh:
        for line in fh:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = len(head) >= 6 and head[-1] == target
            elif inside and head and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_read_field_matches_fancy_indexing_and_converts(tmp_path):
    path, X = _cohort_file(tmp_path)
    Xm = load_cohort(path)
    rows = np.array([13, 2, 2, 19, 0, 7, 8, 9, 10, 11, 5])  # unsorted, a repeat, > one chunk
    out = np.empty((len(rows), 24, 24, 24), np.float64)
    read_field(Xm, "pet", rows, out, chunk=4)
    np.testing.assert_array_equal(out, X["pet"][rows].astype(np.float64))
    masks = np.empty((len(rows), 24, 24, 24), np.uint8)
    np.testing.assert_array_equal(read_field(Xm, "mask", rows, masks), X["mask"][rows])


def test_mapped_file_only_for_shared_maps(tmp_path):
    path, X = _cohort_file(tmp_path, n=3)
    assert mapped_file(load_cohort(path)) is not None
    assert mapped_file(load_cohort(path)["pet"][1:]) is not None  # views of it too
    assert mapped_file(load_cohort(path, mmap_mode="c")) is None  # copy-on-write: left alone
    assert mapped_file(X) is None
    release_pages(X)  # in memory: a no-op


@needs_smaps
def test_release_pages_keeps_data_and_unmaps_them(tmp_path):
    path, X = _cohort_file(tmp_path)
    Xm = load_cohort(path)
    total = float(np.asarray(Xm["pet"]).sum())  # reads every PET page
    assert _resident_kib(path) >= 20 * 24**3 * 4 // 1024
    release_pages(Xm)
    assert _resident_kib(path) <= 8  # at most the header page and its neighbour
    assert float(np.asarray(Xm["pet"]).sum()) == total  # still readable, same values


@needs_smaps
def test_full_nan_scan_leaves_no_mapped_cohort_resident(tmp_path):
    """check_cohort reads every voxel; afterwards none of the file stays in this process."""
    path, _ = _cohort_file(tmp_path)
    Xm = load_cohort(path)
    check_cohort(Xm, require_mask=True, clinical=["age"])
    assert _resident_kib(path) <= 8
    c = load_cohort(path, mmap_mode="c")  # copy-on-write maps are not touched
    c["pet"][0] = np.nan
    with pytest.raises(ValueError, match="'pet' has NaN or infinite voxels for patient 0"):
        check_cohort(c)
    assert np.isnan(c["pet"][0]).all()  # the private change survived the scan
