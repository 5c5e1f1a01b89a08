"""``trainwell report``: a run, a study, several runs, and clear errors."""

from __future__ import annotations

from reporthelp import Page

from trainwell.cli import main


def test_report_of_one_run_and_of_a_study(iris_run, study_dir, tmp_path, capsys):
    out = tmp_path / "run.html"
    assert main(["report", str(iris_run), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert Page(out).sections[0] == "summary" and "fig-curves" in Page(out).figures
    assert main(["report", str(study_dir), "--out", str(tmp_path / "study.html")]) == 0
    assert "fig-parallel" in Page(tmp_path / "study.html").figures


def test_report_of_several_runs_compares_them(iris_run, iris_run_fast, tmp_path, monkeypatch,
                                              capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(iris_run), str(iris_run_fast)]) == 0
    assert "wrote comparison.html" in capsys.readouterr().out
    assert Page(tmp_path / "comparison.html").sections == ["runs", "curves"]
    out = tmp_path / "many.html"
    assert main(["report", "--compare", str(iris_run), str(iris_run_fast), "--out", str(out)]) == 0
    assert Page(out).table_with("train.optimizer.lr")[0][:3] == ["run", "status",
                                                                 "train.optimizer.lr"]


def test_compare_refuses_a_path_that_is_not_a_run(iris_run, study_dir, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    for paths, why in (([str(iris_run), "notes"], "notes is not a run directory"),
                       ([str(iris_run), str(study_dir)], "is not a run directory"),
                       ([str(iris_run)], "--compare needs at least 2 run directories; got 1")):
        assert main(["report", "--compare", *paths]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and why in err[0], err
    assert not (tmp_path / "comparison.html").exists()


def test_report_errors_name_the_path_and_what_is_expected(iris_run, study_dir, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing is not a directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["report", str(iris_run.parent)]) == 2  # the runs folder itself
    assert "it holds run or study directories (" in capsys.readouterr().err
    assert main(["report", str(iris_run), str(iris_run)]) == 2
    assert "is given twice" in capsys.readouterr().err
    assert main(["report", str(iris_run), str(study_dir)]) == 2
    err = capsys.readouterr().err
    assert "only run directories can be compared" in err and "study directory" in err
