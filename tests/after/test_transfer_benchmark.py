"""``benchmarks/after_transfer.py --quick`` runs end to end and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "after_transfer.py"


@pytest.mark.slow
def test_quick_benchmark_prints_the_table_and_the_negative_case(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("after_transfer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for method in module.METHODS:
        assert f"\n{method:<22}" in out
    assert "auto - best (points)" in out and "auto chose: k=1: probe_then_finetune; k=5: " in out
    assert "negative transfer (source pretrained on shuffled labels), k=5" in out
    assert "doctor: " in out and "Lecture 002's table:" in out
    assert list(tmp_path.iterdir()) == []  # everything in a temporary folder
