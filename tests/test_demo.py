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


def test_run_demo_rejects_an_unknown_model_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown demo model"):
        run_demo(tmp_path / "demo", models=["NoSuchModel"])
    assert not (tmp_path / "demo").exists()  # nothing written for a bad argument
