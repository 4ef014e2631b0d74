"""`run_demo`: the built-in demo writes its table inside the folder it was given."""

import pandas as pd
import pytest

from survseg.demo import run_demo


def test_run_demo_writes_the_table_only_in_its_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    table = run_demo(
        out,
        n_patients=30,
        shape=(16, 16, 16),
        event_rate=0.6,
        models=["ClinicalCox", "RadiomicsCox"],
        n_bootstrap=20,
        n_jobs=1,
        plots=False,
    )
    assert list(table["model"]) == ["ClinicalCox", "RadiomicsCox"]
    saved = pd.read_csv(out / "results.csv")
    assert list(saved["model"]) == ["ClinicalCox", "RadiomicsCox"]
    assert saved["cindex_within_fold"].between(0, 1).all()
    assert {p.name for p in tmp_path.iterdir()} == {"demo"}
    printed = capsys.readouterr().out
    assert "30 patients" in printed and "p_value_within_fold" in printed
    assert "voxels of 9.0 mm" in printed  # HECKTOR 2021's 144 mm box over 16 voxels


def test_run_demo_draws_the_field_of_view_it_is_given(tmp_path, monkeypatch):
    import survseg.datasets as datasets

    drawn = {}
    real = datasets.make_petct_cohort

    def spy(*args, **kwargs):
        drawn.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "make_petct_cohort", spy)
    run_demo(
        tmp_path / "demo",
        n_patients=20,
        shape=(16, 20, 16),
        field_of_view_mm=120.0,
        event_rate=0.6,
        models=["ClinicalCox"],
        n_bootstrap=10,
        n_jobs=1,
        plots=False,
        verbose=0,
    )
    assert drawn["voxel_size_mm"] == pytest.approx(6.0)  # the longest axis, 20 voxels, spans 120 mm


@pytest.mark.parametrize("fov", [0.0, -10.0, float("nan")])
def test_run_demo_rejects_a_bad_field_of_view_before_writing(tmp_path, fov):
    with pytest.raises(ValueError, match="field_of_view_mm"):
        run_demo(tmp_path / "demo", field_of_view_mm=fov, models=["ClinicalCox"])
    assert not (tmp_path / "demo").exists()


def test_run_demo_rejects_an_unknown_model_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown demo model"):
        run_demo(tmp_path / "demo", models=["NoSuchModel"])
    assert not (tmp_path / "demo").exists()  # nothing written for a bad argument
