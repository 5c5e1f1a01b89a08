"""The LR finder's result object (curve, suggestion, plot), the data kinds ``Trainer.fit``
takes, and the doctor's LR figure in a run directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.diagnose import doctor, find_lr
from trainwell.diagnose.lr import LR_FIGURE


def _data():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 6, generator=gen)
    y = (X[:, 0] - X[:, 1] > 0).long() + (X[:, 2] > 0.8).long()
    return X, y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def test_find_lr_returns_the_curve_the_suggestion_and_a_figure():
    X, y = _data()
    res = find_lr(_net(), (X, y), optimizer="sgd", iters=60, lr_min=1e-4, lr_max=10.0)
    assert len(res.lrs) == len(res.losses) > 10
    assert np.all(np.diff(res.lrs) > 0)
    k = int(np.argmin(res.losses))
    assert res.suggestion == res.suggested_lr == pytest.approx(res.lrs[k] / 10)
    fig = res.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), res.lrs)
    np.testing.assert_allclose(line.get_ydata(), res.losses)
    assert [t.get_text() for t in ax.get_legend().get_texts()][1].startswith("suggested")


@pytest.mark.parametrize("kind", ["dataset", "loader"])
def test_find_lr_and_doctor_take_a_dataset_or_a_dataloader_as_fit_does(kind, tmp_path):
    X, y = _data()
    data = (TensorDataset(X, y) if kind == "dataset"
            else DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True,
                            generator=torch.Generator().manual_seed(1)))
    ref = find_lr(_net(), (X, y), optimizer="sgd", iters=30)
    res = find_lr(_net(), data, optimizer="sgd", iters=30)
    if kind == "dataset":  # the same rows in the same order: the same curve
        assert res.lrs == ref.lrs and res.losses == pytest.approx(ref.losses)
    else:  # a shuffled loader gives the rows in its own order; the loader's RNG is untouched
        assert len(res.losses) == len(ref.losses)
        assert data.generator.get_state().equal(torch.Generator().manual_seed(1).get_state())
    rep = doctor(_net(), data, checks=["initial_loss", "lr"], out_dir=tmp_path,
                 config={"lr_iters": 20, "probe_iters": 10})
    assert rep.info["n_train"] == 200
    assert rep.get("loss.initial")[0].status == "pass"
    assert rep.get("lr.range")[0].evidence["figure"] == LR_FIGURE
    assert (tmp_path / LR_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_loader_of_something_else_is_a_data_error():
    from trainwell.errors import DataError

    X, _ = _data()
    with pytest.raises(DataError, match="the DataLoader must yield \\(x, y\\) batches"):
        find_lr(_net(), DataLoader(X, batch_size=50), iters=10)


@pytest.mark.slow
def test_a_run_with_the_doctor_keeps_the_lr_figure(runs_dir):
    import trainwell as tw

    run = tw.fit({"data": {"source": "builtin:iris"}, "runs_dir": str(runs_dir),
                  "train": {"epochs": 1},
                  "doctor": {"enabled": True, "checks": ["lr"], "lr_iters": 20,
                             "probe_iters": 10}}, quiet=True)
    assert (run.run_dir / LR_FIGURE).is_file()
