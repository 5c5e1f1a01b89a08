"""report.html while a run trains: written at epoch k, it says "training" and reloads itself;
at the end it does neither; when a rate-limited refresh is due."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
from reporthelp import IRIS, Page

from trainwell.errors import ConfigError
from trainwell.report.live import LiveReport

REFRESH = '<meta http-equiv="refresh"'


@pytest.fixture(scope="module")
def stopped_run(runs_root, tmp_path_factory):
    """A 4-epoch run refreshed after every epoch; the page after epoch 2 is kept, and an error
    raised after epoch 3 ends the run."""
    from trainwell.api import fit

    run_dir = runs_root / "iris-live"
    kept = tmp_path_factory.mktemp("live") / "epoch2.html"
    live = LiveReport(run_dir, every=1, budget=float("inf"))  # no 5% limit on a tiny run

    class KeepAndStop:
        def after_epoch(self, trainer):  # runs after the LiveReport's refresh of this epoch
            if trainer.epoch == 2:
                shutil.copy(run_dir / "report.html", kept)
            if trainer.epoch == 3:
                raise RuntimeError("stopped on purpose after epoch 3")

    cfg = {**IRIS, "train": {"epochs": 4, "batch_size": 32}, "runs_dir": str(runs_root),
           "doctor": {"enabled": False, "monitor": False}, "log": {"report_every": 0}}
    with pytest.raises(RuntimeError, match="on purpose"):
        fit(cfg, name="iris-live", quiet=True, callbacks=[live, KeepAndStop()])
    return SimpleNamespace(dir=run_dir, kept=kept, live=live)


@pytest.mark.slow
def test_report_written_during_training_says_so_and_reloads(stopped_run, browser):
    page = Page(stopped_run.kept)
    assert 'id="live">training, epoch 2 of 4, updated at ' in page.text
    assert f'{REFRESH} content="60">' in page.text  # the refresh interval, 60 s
    assert "the run is training" in page.text  # no results.json yet: said, not "absent"
    assert page.sections[:2] == ["summary", "curves"] and "fig-curves" in page.figures
    browser.open(stopped_run.kept)
    state = browser.run("return [document.querySelector('meta[http-equiv=refresh]').content,"
                        " document.getElementById('live').textContent]")
    assert state[0] == "60" and state[1].startswith("training, epoch 2 of 4")


@pytest.mark.slow
def test_a_run_that_stopped_leaves_a_page_that_no_longer_reloads(stopped_run):
    assert stopped_run.live.refreshes == 3 + 1  # epochs 1-3, then the last page at the end
    text = (stopped_run.dir / "report.html").read_text(encoding="utf-8")
    assert "training stopped (failed) at epoch 3 of 4" in text
    assert REFRESH not in text


def test_the_report_at_the_end_of_a_run_does_not_reload(iris_report):
    text = iris_report.read_text(encoding="utf-8")
    assert REFRESH not in text and 'id="live"' not in text


def trainer(epoch: int, epochs: int = 100) -> SimpleNamespace:
    return SimpleNamespace(epoch=epoch, epochs=epochs, stopped_early=False, stop_training=False)


def test_refreshes_every_n_epochs_or_after_an_interval_within_the_time_budget(tmp_path):
    live = LiveReport(tmp_path, every=10, interval_s=60.0, budget=0.05)
    live._start, live._last = 0.0, 50.0  # training began at 0 s, the last refresh at 50 s
    live.last_cost = 1.0  # one refresh costs 1 s: at least 20 s of training per refresh
    assert not live.due(trainer(9), now=100.0)  # 50 s since the last refresh, epoch 9
    assert live.due(trainer(10), now=100.0)  # every 10 epochs
    assert live.due(trainer(7), now=110.0)  # 60 s since the last refresh: a long epoch
    assert not live.due(trainer(10), now=19.0)  # 1 s > 5% of 19 s of training
    assert live.due(trainer(10), now=20.0)  # 1 s = 5% of 20 s
    live.spent = 4.0  # four refreshes so far: the fifth needs 100 s of training
    assert not live.due(trainer(10), now=99.0) and live.due(trainer(10), now=100.0)
    assert not live.due(trainer(100), now=1e6)  # the last epoch: the final report comes next
    assert not LiveReport(tmp_path, every=0).due(trainer(10), now=1e6)  # 0: only at the end


def test_report_every_is_checked_at_load():
    from trainwell.config import config_from_dict

    assert config_from_dict({}).log.report_every == 10
    with pytest.raises(ConfigError, match="report_every"):
        config_from_dict({"log": {"report_every": -1}})
    with pytest.raises(ConfigError, match="report_interval_s"):
        config_from_dict({"log": {"report_interval_s": 0}})
