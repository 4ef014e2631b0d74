"""The top-level re-exports: each resolves to its module's object, stays lazy, and its module
is in the API docs."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import survseg

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def test_every_export_is_its_modules_object():
    for name in survseg.__all__:
        obj = getattr(survseg, name)
        module = getattr(obj, "__module__", None)
        if module is None:  # __version__
            continue
        assert getattr(importlib.import_module(module), name.split(".")[-1], obj) is obj, name


def test_new_public_classes_are_at_the_top_level():
    from survseg.estimators.icare import BaggedIcareSurvival, IcareSurvival
    from survseg.evaluation.calibration import calibration_at_horizon, d_calibration
    from survseg.feature_selection import CoxPValueSelector, concordance_score, cox_score_test
    from survseg.persistence import load_weights, save_weights
    from survseg.training.checkpoint import Checkpoint

    for obj in (
        BaggedIcareSurvival,
        IcareSurvival,
        calibration_at_horizon,
        d_calibration,
        CoxPValueSelector,
        concordance_score,
        cox_score_test,
        load_weights,
        save_weights,
        Checkpoint,
    ):
        assert getattr(survseg, obj.__name__) is obj
        assert obj.__name__ in dir(survseg)


def test_import_stays_cheap():
    code = "import sys, survseg; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_exports_are_in_the_api_docs():
    documented = set()
    for page in DOCS.glob("*.md"):
        documented |= set(re.findall(r"^::: (survseg[\w.]*)", page.read_text(), re.M))
    index = (DOCS / "index.md").read_text()
    for name in survseg.__all__:
        obj = getattr(survseg, name)
        module = getattr(obj, "__module__", None)
        if module is None:
            continue
        assert module in documented, f"{name}: {module} has no API page"
        assert f"survseg.{name}" in index, f"{name} is not listed in docs/api/index.md"
