"""The config loader: did-you-mean, dotted paths with value and range, --set, data checks."""

from __future__ import annotations

import pytest
from pydantic import field_validator

from trainwell.config import load_config, parse_override
from trainwell.errors import ConfigError
from trainwell.schema import Section, get_path, set_path, validate_section


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
    with pytest.raises(
        ConfigError, match="data.split.tst: unknown key. did you mean 'data.split.test'"
    ):
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
    (sub / "c.toml").write_text(
        '[data]\nsource = "csv:d/t.csv"\n[data.split]\nindices = "i.json"\n'
    )
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
     "data.preprocess: step 0: minmax.range: range must be [low, high] with low < high; "
     "got [2, 1]"),
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


def test_check_names_each_field_path_once(tmp_path, capsys):
    """``trainwell check`` on a bad TOML: the path once, the value once (the validator's own
    message already says the path and the value)."""
    from trainwell.cli import main
    from trainwell.train.config import SCHEDULE_NAMES

    path = tmp_path / "bad.toml"
    path.write_text('[data]\nsource = "builtin:iris"\n\n[train.schedule]\nname = "cosinee"\n')
    assert main(["check", str(path)]) == 2
    valid = ", ".join(SCHEDULE_NAMES.names(aliases=True))
    assert capsys.readouterr().err == (
        f"error: invalid config ({path}):\n"
        "  train.schedule.name: unknown schedule 'cosinee'; did you mean 'cosine'? "
        f"valid: {valid}\n"
    )


class _Inner(Section):
    name: str = "a"
    rate: float = 0.1

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value != "a":
            # a validator that names a shorter path than the field's, then the value
            raise ValueError(f"inner: unknown name {value!r}; valid: a")
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        if value > 1:
            raise ValueError("inner.rate must be at most 1")
        return value


class _Outer(Section):
    inner: _Inner = _Inner()
    size: int = 1

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1:
            raise ValueError("size must be >= 1")  # an ordinary first word, not a path
        return value


@pytest.mark.parametrize(("raw", "line"), [
    ({"inner": {"name": "b"}}, "inner.name: unknown name 'b'; valid: a"),
    ({"inner": {"rate": 2.0}}, "inner.rate: must be at most 1; got 2.0"),
    ({"size": 0}, "size: size must be >= 1; got 0"),
    ({"inner": {"nmae": "a"}}, "inner.nmae: unknown key. did you mean 'inner.name'? valid keys "
                               "here: name, rate"),
])
def test_a_validators_own_path_and_value_are_not_repeated(raw, line):
    with pytest.raises(ConfigError) as exc:
        validate_section(_Outer, raw, "probe")
    assert str(exc.value) == f"invalid config (probe):\n  {line}"


def test_set_path_creates_tables_and_names_what_is_in_the_way():
    raw: dict = {"model": {"activation": "relu", "hidden": [8]}}
    set_path(raw, "model.activation.negative_slope", 0.1)
    set_path(raw, "train.optimizer.lr", 0.01)
    assert raw["model"]["activation"] == {"name": "relu", "negative_slope": 0.1}
    assert get_path(raw, "train.optimizer.lr") == 0.01 and get_path(raw, "train.epochs") is None
    with pytest.raises(ConfigError, match=r"model.hidden is \[8\], not a table, so it has no key"):
        set_path(raw, "model.hidden.width", 4)
    # --set goes through the same path tool
    with pytest.raises(ConfigError, match=r"--set model.hidden.width=4: model.hidden is \[8\]"):
        load_config({}, ["model.hidden=[8]", "model.hidden.width=4"])


def test_a_bad_search_space_entry_names_its_own_path_once():
    with pytest.raises(ConfigError) as info:
        load_config({}, ['tune.space={"train.optimizer.lr"="foo(1,2)"}'])
    line = str(info.value).splitlines()[1].strip()
    assert line.startswith("tune.space.'train.optimizer.lr': unknown distribution 'foo'; valid: ")
    assert "tune.space: tune.space" not in str(info.value) and "got {" not in line


def test_a_config_path_that_is_a_folder_says_so(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == (f"config file {tmp_path} is a folder, not a file; give the path "
                               "of a TOML config file")
    (tmp_path / "b.toml").write_text("seed = 1\n")
    (tmp_path / "a.toml").write_text("seed = 2\n")
    with pytest.raises(ConfigError, match="is a folder, not a file; .* it holds a.toml, b.toml$"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="nowhere.toml does not exist"):
        load_config(tmp_path / "nowhere.toml")


def test_patience_never_survives_the_written_config():
    """TOML has no null: "never stop early" is written as a word and reads back as None (a
    resumed run or a trial of a study must not stop early at the default patience)."""
    import tomllib

    cfg = load_config({"train": {"early_stopping": {"patience": None}}})
    text = cfg.to_toml()
    assert 'patience = "never"' in text
    again = load_config(tomllib.loads(text))
    assert again.train.early_stopping.patience is None
    assert again.to_dict() == cfg.to_dict()
    never = load_config(None, ["train.early_stopping.patience=never"])
    assert never.train.early_stopping.patience is None
    assert load_config(None).train.early_stopping.patience == 10
