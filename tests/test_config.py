"""The config loader: did-you-mean, dotted paths with value and range, --set, data checks."""

from __future__ import annotations

import pytest

from trainwell.config import load_config, parse_override
from trainwell.errors import ConfigError


def test_unknown_nested_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="data.split.stratfy: unknown key. did you mean "
                                          "'data.split.stratify'\\?.*valid keys here: column"):
        load_config({"data": {"split": {"stratfy": False}}})


def test_out_of_range_names_dotted_path_value_and_bound():
    with pytest.raises(ConfigError) as exc:
        load_config({"data": {"split": {"val": 1.5}}})
    msg = str(exc.value)
    assert "data.split.val" in msg and "less than 1" in msg and "got 1.5" in msg
    load_config({"data": {"split": {"val": 0.0, "test": 0.0}}})  # boundary accepted
    with pytest.raises(ConfigError, match="data.split.val.*greater than or equal to 0.*got -0.1"):
        load_config({"data": {"split": {"val": -0.1}}})
    with pytest.raises(ConfigError, match="data.task.*'auto', 'binary', 'multiclass' or "
                                          "'regression'.*got 'multi'"):
        load_config({"data": {"task": "multi"}})


def test_set_overrides_are_validated_the_same_way(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nsource = "builtin:iris"\n')
    cfg = load_config(path, ["data.split.val=0.3", "data.params.noise=0.1", "seed=4"])
    assert cfg.data.split.val == 0.3 and cfg.seed == 4 and cfg.data.params == {"noise": 0.1}
    with pytest.raises(ConfigError, match="data.split.val.*got 2"):
        load_config(path, ["data.split.val=2"])
    with pytest.raises(ConfigError, match="data.split.tst: unknown key. did you mean 'data.split.test'"):
        load_config(path, ["data.split.tst=0.1"])
    with pytest.raises(ConfigError, match="--set expects section.key=value"):
        parse_override("data.split.val")
    assert parse_override("data.source=builtin:wine") == (["data", "source"], "builtin:wine")


def test_data_section_checks_sources_and_steps_up_front():
    with pytest.raises(ConfigError, match="unknown builtin dataset 'irs'; did you mean 'iris'"):
        load_config({"data": {"source": "builtin:irs"}})
    with pytest.raises(ConfigError, match="unknown source kind 'cvs'; did you mean 'csv'"):
        load_config({"data": {"source": "cvs:a.csv"}})
    with pytest.raises(ConfigError, match="must look like KIND:WHAT"):
        load_config({"data": {"source": "a.csv"}})
    with pytest.raises(ConfigError, match="data.preprocess.*unknown preprocessing step 'standardze'"
                                          "; did you mean 'standardize'"):
        load_config({"data": {"preprocess": ["standardze"]}})
    with pytest.raises(ConfigError, match="val \\+ test must be below 1"):
        load_config({"data": {"split": {"val": 0.5, "test": 0.5}}})
    with pytest.raises(ConfigError, match="data.columns.a.*'numeric', 'categorical'"):
        load_config({"data": {"columns": {"a": "text"}}})


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    sub = tmp_path / "exp"
    sub.mkdir()
    (sub / "c.toml").write_text('[data]\nsource = "csv:d/t.csv"\n[data.split]\nindices = "i.json"\n')
    cfg = load_config(sub / "c.toml")
    assert cfg.data.source == f"csv:{sub / 'd' / 't.csv'}"
    assert cfg.data.split.indices == str(sub / "i.json")


@pytest.mark.parametrize("data, message", [
    ({"images": {"size": [0, 4]}},
     "data.images.size: size must be [height, width] with both >= 1; got [0, 4]"),
    ({"preprocess": [{"name": "pca", "components": True}]},
     "data.preprocess: step 0: pca.components: components must be an int >= 1 or a fraction in "
     "(0, 1); got True"),
    ({"preprocess": [{"name": "minmax", "range": [2, 1]}]},
     "data.preprocess: step 0: minmax.range: range must be [low, high] with low < high; got [2, 1]"),
    ({"preprocess": ["standardize", "impute"]},
     "data.preprocess: 'impute' works on raw columns, so it must come before 'standardize'; "
     "got ['standardize', 'impute']"),
    ({"split": {"indices": {"tran": "a.txt"}}},
     "data.split: split.indices has an unknown key 'tran'; did you mean 'train'? allowed: train, "
     "val, test"),
    ({"split": {"val": 0.6, "test": 0.5}},
     "data.split: val + test must be below 1 so that rows remain for training (val=0.6 + "
     "test=0.5 = 1.1)"),
])
def test_data_messages_name_the_path_and_show_the_value_once(data, message):
    with pytest.raises(ConfigError) as exc:
        load_config({"data": data})
    line = str(exc.value).splitlines()[1].strip()
    assert line.startswith(message), line
    shown = line.split("; got ")[1:]
    assert len(shown) == len(set(shown)), line  # never the same value twice
