"""Record the golden predictions: ``python tests/golden/record_golden.py`` (about a minute).

Writes ``tests/golden/<family>.npz`` with one array per row and output, named
``"<row>|<output>"``. Run it only to record a deliberate change of behaviour, and say so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this checkout's survseg, not an installed one

from golden_rows import families, fit_row, outputs  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    import survseg

    print("survseg from", survseg.__file__)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    for family, cls, base, rows, data in families():
        X, y = data()
        arrays = {"__commit__": np.asarray(commit)}
        for row, params in rows.items():
            est = fit_row(cls, base, params, X, y)
            out = outputs(est, X)
            for name, value in out.items():
                arrays[f"{row}|{name}"] = value
            print(family, row, sorted(out), flush=True)
        np.savez_compressed(HERE / f"{family}.npz", **arrays)


if __name__ == "__main__":
    main()
