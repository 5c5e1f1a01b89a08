"""CSV dialects a user really has: a byte-order mark, `;` tab or `|` between fields, a decimal
comma, a legacy encoding; detected where the file says it, set with data.delimiter /
data.decimal / data.encoding where it does not."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.data.config import DataConfig
from trainwell.data.sources import RawTable, read_source
from trainwell.data.tables import CsvDialect, detect_delimiter, read_csv
from trainwell.errors import ConfigError, DataError

FRAME = pd.DataFrame({"length": np.round(np.linspace(0.5, 9.5, 24), 2),
                      "color": ["red", "green", "blue"] * 8, "label": ["a", "b"] * 12})


def _write(path, text, encoding="utf-8", bom=b""):
    path.write_bytes(bom + text.encode(encoding))
    return path


def _text(delimiter=",", decimal=".", frame=FRAME):
    return frame.to_csv(index=False, sep=delimiter, decimal=decimal, lineterminator="\n")


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_delimiter_and_byte_order_mark_are_detected(tmp_path, delimiter, bom):
    path = _write(tmp_path / "t.csv", _text(delimiter), bom=bom)
    frame = read_csv(path)
    assert list(frame.columns) == ["length", "color", "label"]
    pd.testing.assert_frame_equal(frame, FRAME)


def test_a_semicolon_csv_with_a_bom_prepares_like_the_comma_one(tmp_path):
    """The issue's case: read as one column ('\\ufeffa;b;y') before."""
    comma = _write(tmp_path / "comma.csv", _text(","))
    semi = _write(tmp_path / "semi.csv", _text(";"), bom=b"\xef\xbb\xbf")
    a = prepare(DataConfig(source=f"csv:{comma}", target="label"), 0)
    b = prepare(DataConfig(source=f"csv:{semi}", target="label"), 0)
    assert b.info["feature_types"] == {"length": "numeric", "color": "categorical"}
    assert b.feature_names == a.feature_names
    np.testing.assert_array_equal(b.train.X.numpy(), a.train.X.numpy())


def test_utf16_text_with_tabs_as_spreadsheets_export_it(tmp_path):
    path = _write(tmp_path / "u16.txt", _text("\t"), encoding="utf-16")  # writes its own BOM
    pd.testing.assert_frame_equal(read_source(f"csv:{path}", {}, 0).frame, FRAME)


def test_the_comma_is_read_with_the_c_engine(tmp_path, monkeypatch):
    seen = {}
    real = pd.read_csv

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    read_csv(_write(tmp_path / "t.csv", _text(",")))
    assert seen["sep"] == "," and seen.get("engine") in (None, "c")


@pytest.mark.parametrize("sample, expected", [
    ("a,b,y\n1,2,0\n", ","),
    ('name;note;y\n"x, y";"1,5";0\n"z";"2";1\n', ";"),     # commas inside quotes are text
    ("a|b\n1|2\n3|4\n", "|"),
    ("a;b,c;y\n1;2,5;0\n", ";"),                           # more fields wins
    ("only\n1\n2\n", None),                                # one column: nothing to detect
    ("a;b;y\n1;2\n3;4;5;6\n7\n8;9;0\n", None),             # rows of uneven width
])
def test_detect_delimiter(sample, expected):
    assert detect_delimiter(sample) == expected


def test_a_decimal_comma_is_not_taken_for_the_delimiter():
    assert detect_delimiter("a,b\n1,5\n", exclude=",") is None
    assert detect_delimiter("a;b\n1,5;2,5\n", exclude=",") == ";"


# ---------------------------------------------------------------------------- settings


def test_decimal_comma(tmp_path):
    path = _write(tmp_path / "eu.csv", _text(";", decimal=","))
    assert "1,28" in path.read_text()
    pd.testing.assert_frame_equal(read_csv(path, CsvDialect(decimal=",")), FRAME)
    tabs = _write(tmp_path / "eu.tsv", _text("\t", decimal=","))
    pd.testing.assert_frame_equal(read_csv(tabs, CsvDialect(decimal=",")), FRAME)


def test_numbers_with_a_decimal_comma_read_as_text_are_refused(tmp_path):
    path = _write(tmp_path / "eu.csv", _text(";", decimal=","))
    with pytest.raises(DataError, match="column 'length' of csv file .*eu.csv holds numbers "
                       "written with a decimal comma \\(e.g. '0,5'\\).*data.decimal = \",\""):
        prepare(DataConfig(source=f"csv:{path}", target="label"), 0)
    kept = prepare(DataConfig(source=f"csv:{path}", target="label",
                              columns={"length": "categorical"}), 0)
    assert kept.info["feature_types"]["length"] == "categorical"


def test_thousands_and_text_of_other_sources_are_not_taken_for_a_decimal_comma(tmp_path):
    path = tmp_path / "k.csv"
    pd.DataFrame({"amount": ["1,000", "12,500", "3,250"] * 4,
                  "label": ["a", "b"] * 6}).to_csv(path, index=False)
    data = prepare(DataConfig(source=f"csv:{path}", target="label"), 0)
    assert data.info["feature_types"] == {"amount": "categorical"}
    pq = tmp_path / "t.parquet"
    pd.DataFrame({"v": ["1,5", "2,5"] * 6, "label": ["a", "b"] * 6}).to_parquet(pq)
    data = prepare(DataConfig(source=f"parquet:{pq}", target="label"), 0)
    assert data.info["feature_types"] == {"v": "categorical"}


def test_a_header_longer_than_the_sample(tmp_path):
    names = [f"a_long_feature_name_{i:05d}" for i in range(4000)]
    assert len(";".join(names)) > 64 * 1024
    text = ";".join([*names, "y"]) + "\n" + ";".join(["1"] * 4000 + ["0"]) + "\n"
    frame = read_csv(_write(tmp_path / "wide.csv", text))
    assert frame.shape == (1, 4001)
    dup = ";".join([*names, names[0]]) + "\n" + ";".join(["1"] * 4001) + "\n"
    with pytest.raises(DataError, match="'a_long_feature_name_00000' \\(columns 1, 4001\\)"):
        read_csv(_write(tmp_path / "dup.csv", dup))


def test_encoding(tmp_path):
    frame = FRAME.assign(color=["rouge", "vert", "bleu ciel é"] * 8)
    path = _write(tmp_path / "latin.csv", _text(";", frame=frame), encoding="latin-1")
    with pytest.raises(DataError, match="latin.csv is not utf-8 text .*set data.encoding"):
        read_csv(path)
    pd.testing.assert_frame_equal(read_csv(path, CsvDialect(encoding="latin-1")), frame)


def test_a_given_delimiter_is_used(tmp_path):
    path = _write(tmp_path / "t.csv", "a;b|c;y\n1;2|3;0\n4;5|6;1\n")
    assert list(read_csv(path).columns) == ["a", "b|c", "y"]
    assert list(read_csv(path, CsvDialect(delimiter="|")).columns) == ["a;b", "c;y"]


def test_one_column_whose_header_holds_another_delimiter_says_how_to_set_it(tmp_path):
    path = _write(tmp_path / "semi.csv", _text(";"))
    with pytest.raises(DataError) as info:
        read_csv(path, CsvDialect(delimiter=","))
    assert re.fullmatch(r"csv file .*semi.csv reads as one column 'length;color;label' with the "
                        r"delimiter \",\", but its header holds \";\"; set data.delimiter = \";\"",
                        str(info.value)), str(info.value)
    ragged = _write(tmp_path / "ragged.csv", "a;b;y\n1;2\n3;4;5;6\n7\n8;9;0\n")
    with pytest.raises(DataError, match='set data.delimiter = ";"'):
        read_csv(ragged)
    tabs = _write(tmp_path / "tabs.csv", "a\tb\n1\n")
    with pytest.raises(DataError, match='holds "\\\\t"; set data.delimiter = "\\\\t"'):
        read_csv(tabs)


def test_prediction_input_is_read_with_the_runs_dialect(tmp_path):
    path = _write(tmp_path / "new.csv", _text(";", decimal=",").replace("label", "other"))
    raw = read_source(f"csv:{path}", {}, 0, for_prediction=True,
                      dialect=CsvDialect(delimiter=";", decimal=","))
    assert isinstance(raw, RawTable)
    np.testing.assert_allclose(raw.frame["length"], FRAME["length"])
    with pytest.raises(DataError, match='this run reads CSVs with the delimiter ",": write the '
                       "file with it"):
        read_source(f"csv:{path}", {}, 0, for_prediction=True, dialect=CsvDialect(delimiter=","))
    latin = _write(tmp_path / "latin.csv", "x;y\né;1\n", encoding="latin-1")
    with pytest.raises(DataError, match="latin.csv is not utf-8 text .*; this run reads CSVs as "
                       "utf-8: save the file in utf-8$"):
        read_source(f"csv:{latin}", {}, 0, for_prediction=True, dialect=CsvDialect())


def test_a_single_column_prediction_file_is_fine(tmp_path):
    path = _write(tmp_path / "x.csv", "length\n1.5\n2.5\n")
    assert list(read_csv(path, for_prediction=True)["length"]) == [1.5, 2.5]


# ---------------------------------------------------------------------------- the config fields


def test_dialect_fields_reach_the_reader():
    cfg = load_config({"data": {"source": "csv:t.csv", "delimiter": "\t", "decimal": ",",
                                "encoding": "cp1252"}})
    assert cfg.data.csv_dialect() == CsvDialect("\t", ",", "cp1252")
    assert DataConfig(source="csv:t.csv").csv_dialect() == CsvDialect()
    assert CsvDialect.from_dict(CsvDialect(";", ",").to_dict()) == CsvDialect(";", ",")
    assert CsvDialect.from_dict(None) == CsvDialect()


@pytest.mark.parametrize("data, message", [
    ({"delimiter": ";;"}, "data.delimiter: must be one character .*; got ';;'"),
    ({"delimiter": "x"}, "data.delimiter: must be one character"),
    ({"delimiter": "."}, "data.delimiter: must be one character"),
    ({"decimal": ";"}, "data.decimal: .*'\\.' or ','.*got ';'"),
    ({"encoding": "utf-9"}, "data.encoding: must be a Python codec name .*got 'utf-9'"),
    ({"decimal": ",", "delimiter": ","}, "data.delimiter: ',' is also data.decimal"),
    ({"source": "parquet:t.parquet", "delimiter": ";"},
     "data.delimiter: ';' applies to csv sources only, and data.source is 'parquet:t.parquet'"),
    ({"source": "builtin:iris", "decimal": ","}, "data.decimal: ',' applies to csv sources only"),
])
def test_bad_dialect_settings_are_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"data": {"source": "csv:t.csv", **data}})


def test_the_boundary_values_are_accepted():
    for delimiter in (",", ";", "\t", "|", " ", ":"):
        assert load_config({"data": {"source": "csv:t.csv", "delimiter": delimiter}})


def test_a_csv_read_as_one_column_through_the_command_line(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path / "ragged.csv", "a;b;y\n1;2\n3;4;5;6\n7\n8;9;0\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "exp.toml").write_text(f'[data]\nsource = "csv:{path.as_posix()}"\ntarget = "y"\n')
    monkeypatch.chdir(work)
    assert main(["data", "describe", "exp.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert 'set data.delimiter = ";"' in err and "Traceback" not in err
    assert os.listdir(work) == ["exp.toml"]


# ---------------------------------------------------------------------------- through a run


def test_the_dialect_reaches_preparation_and_the_runs_predictions(tmp_path):
    from trainwell.data import load_inference

    path = _write(tmp_path / "eu.csv", _text(";", decimal=","), encoding="cp1252")
    cfg = DataConfig(source=f"csv:{path}", target="label", decimal=",", encoding="cp1252")
    data = prepare(cfg, 0)
    assert data.info["feature_types"] == {"length": "numeric", "color": "categorical"}
    run = tmp_path / "run"
    run.mkdir()
    data.save(run)
    new = _write(tmp_path / "new.csv", _text(";", decimal=",",
                                             frame=FRAME.drop(columns="label")))
    X, ids = load_inference(run).load(new)
    np.testing.assert_allclose(X[data.train.index].numpy(), data.train.X.numpy(), rtol=1e-6)
    assert ids == list(range(len(FRAME)))
    comma = _write(tmp_path / "comma.csv", _text(",", frame=FRAME.drop(columns="label")))
    with pytest.raises(DataError, match='comma.csv reads as one column .*with the delimiter ";", '
                       'but its header holds ","; this run reads CSVs with the delimiter ";"'):
        load_inference(run).load(comma)


def test_a_wrong_delimiter_in_the_config_through_the_command_line(tmp_path, monkeypatch,
                                                                  capsys):
    path = _write(tmp_path / "semi.csv", _text(";"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "exp.toml").write_text(f'[data]\nsource = "csv:{path.as_posix()}"\n'
                                   'target = "label"\ndelimiter = ","\n')
    monkeypatch.chdir(work)
    assert main(["data", "describe", "exp.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: csv file ") and len(err.strip().splitlines()) == 1, err
    assert err.strip().endswith('set data.delimiter = ";"')
    assert os.listdir(work) == ["exp.toml"]
