"""The command line tells its version and defaults, and its docs list the real defaults."""

import re
from pathlib import Path

import pytest

from survseg import __version__
from survseg.cli import build_parser, main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"survseg {__version__}"


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "(default: 300)",
        "(default: 0.5)",
        "(default: 24)",
        "(default: 144.0)",
        "(default: 3)",
        "(default: 200)",
    ):
        assert text in out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_docs_list_the_parsers_demo_defaults():
    demo = build_parser().parse_args(["demo"])
    line = re.search(r"`survseg demo (\[.*?)`", DOCS.read_text(encoding="utf-8"), re.S).group(1)
    documented = dict(re.findall(r"\[--([a-z-]+) ([^\]]+)\]", line))
    assert documented.pop("models") == "..."
    assert documented == {
        "output": demo.output,
        "n-patients": str(demo.n_patients),
        "shape": str(demo.shape[0]),
        "fov": str(demo.fov),
        "event-rate": str(demo.event_rate),
        "folds": str(demo.folds),
        "iterations": str(demo.iterations),
        "seed": str(demo.seed),
        "n-jobs": str(demo.n_jobs),
    }
    assert demo.shape == (24, 24, 24)


def test_fit_verbose_shows_the_extraction_progress(tmp_path, capsys):
    from survseg.data.store import save_dataset
    from tests.conftest import sphere_cohort

    X, y = sphere_cohort(n=10, seed=1)
    save_dataset(tmp_path / "data", X, y)
    args = ["fit", str(tmp_path / "data"), "--model", "RadiomicsCox", "--output"]
    params = [
        "--param",
        "extractor__image_types=['original']",
        "extractor__feature_classes=['firstorder','shape']",
        "extractor__cache=False",
        "cv=2",
        "n_alphas=5",
    ]
    assert main([*args, str(tmp_path / "m.joblib"), *params, "-v"]) == 0
    assert "radiomics" in capsys.readouterr().err  # the extraction's progress bar
    assert main([*args, str(tmp_path / "q.joblib"), *params]) == 0
    assert "radiomics" not in capsys.readouterr().err
