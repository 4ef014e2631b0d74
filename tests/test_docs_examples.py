"""Every Python block of the README and of the docs' getting-started page runs as written.

Each block is executed verbatim in a fresh namespace, in a temporary working directory. Blocks
that read the user's own files (``cohort.csv``, ``hecktor2022/``) find small files of that
name there, written by the loaders' test helpers.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/getting-started.md")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        found = list(_BLOCK.finditer(text))
        assert found, f"{page} has no python block"
        for match in found:
            line = text.count("\n", 0, match.start()) + 1
            yield pytest.param(page, line, match.group(1), id=f"{page}:{line}")


def _user_files(code: str, folder: Path) -> None:
    """The files a block names, as tiny stand-ins for the user's data."""
    if "cohort.csv" in code:
        from tests.datasets.cohort_files import write_manifest

        write_manifest(folder)
    if "hecktor2022/" in code:
        from tests.datasets.cohort_files import write_hecktor

        write_hecktor(folder / "hecktor2022")


@pytest.mark.parametrize("page, line, code", list(_blocks()))
def test_block_runs(page, line, code, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    _user_files(code, tmp_path)
    exec(compile(code, f"{page}:{line}", "exec"), {"__name__": "__main__"})
