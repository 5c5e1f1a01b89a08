"""Real runs and a real study on tiny data, made once per test process, and a headless browser."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside this file

import reportbrowser  # noqa: E402
from reporthelp import IRIS, fit_run  # noqa: E402


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="session")
def iris_run(runs_root) -> Path:
    return fit_run(runs_root, "iris")


@pytest.fixture(scope="session")
def iris_report(iris_run) -> Path:
    """The report ``fit`` wrote at the end of ``iris_run`` (``[log] report`` is on by default)."""
    return iris_run / "report.html"


@pytest.fixture(scope="session")
def iris_run_fast(runs_root) -> Path:
    """The same recipe with a 10x learning rate, for comparisons."""
    return fit_run(runs_root, "iris-fast", ["train.optimizer.lr=0.01"])


@pytest.fixture(scope="session")
def study_dir(runs_root) -> Path:
    from trainwell.tune import tune

    cfg = {**IRIS, "runs_dir": str(runs_root), "train": {"epochs": 2, "batch_size": 16},
           "tune": {"method": "random", "trials": 4,
                    "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)",
                              "model.dropout": "uniform(0, 0.5)"}}}
    return Path(tune(cfg, name="iris-study").dir)


@pytest.fixture
def copy_run(tmp_path):
    def _copy(src: Path, drop: tuple[str, ...] = ()) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        for name in drop:
            (dst / name).unlink(missing_ok=True)
        return dst

    return _copy


@pytest.fixture(scope="session")
def browser():
    b = reportbrowser.Browser(*reportbrowser.ensure_chromium())
    yield b
    b.close()
