"""Findings, the report's JSON shape (docs/architecture.md: doctor.json) and the summary."""

from __future__ import annotations

import json

import pytest

from trainwell.diagnose import DoctorReport, Finding


def _report():
    return DoctorReport(
        findings=[
            Finding(
                "data.scale", "pass", "inputs are on comparable scales", evidence={"std_ratio": 1.5}
            ),
            Finding(
                "init.dead_relu",
                "fail",
                "dead ReLUs",
                "90% dead",
                {"dead_frac": {"1": 0.9}},
                ["use Kaiming init"],
            ),
            Finding("data.constant", "warn", "1 constant feature", evidence={"x": float("nan")}),
        ],
        activation_stats={"init": {"layers": {"1": {"act_std": 0.5}}}},
    )


def test_to_json_has_the_contract_shape_and_is_valid_json(tmp_path):
    doc = _report().to_json()
    assert set(doc) == {"findings", "activation_stats"}
    for f in doc["findings"]:
        assert set(f) == {"check", "status", "title", "detail", "evidence", "advice"}
        assert f["status"] in {"pass", "warn", "fail"}
    path = _report().save(tmp_path)
    loaded = json.loads(path.read_text())  # strict JSON: NaN written as a string
    assert loaded["findings"][2]["evidence"]["x"] == "nan"
    assert loaded["activation_stats"]["init"]["layers"]["1"]["act_std"] == 0.5


def test_status_exit_code_and_diagnosis():
    rep = _report()
    assert rep.status == "fail" and rep.exit_code == 1 and not rep.ok
    assert [f.check for f in rep.diagnosis()] == ["init.dead_relu"]
    assert [f.check for f in rep.get("data")] == ["data.scale", "data.constant"]
    rep.findings = [f for f in rep.findings if f.status != "fail"]
    assert rep.status == "warn" and rep.exit_code == 0
    assert DoctorReport().status == "pass"


def test_summary_names_failures_with_detail_and_advice():
    text = _report().summary()
    assert "1 failed, 1 warnings, 1 passed" in text
    assert "[FAIL] init.dead_relu: dead ReLUs" in text
    assert "-> use Kaiming init" in text and "90% dead" in text


def test_bad_status_is_refused():
    with pytest.raises(ValueError, match="pass, warn, fail"):
        Finding("x", "error", "t")  # type: ignore[arg-type]
