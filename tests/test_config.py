"""Config: recipes parse, unknown keys and bad types fail by name, dotted overrides are typed."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from hear_sela.config import Config, ConfigError, config_from_dict, config_to_dict, load_config, parse_override

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_parses(recipe):
    cfg = load_config(recipe)
    assert isinstance(cfg, Config)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_defaults_without_recipe():
    assert load_config(None) == Config()


def test_unknown_key_in_recipe_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  segment_seconds: 2.0\n  segmnt_hop: 1.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "data.segmnt_hop" in str(e.value) and str(path) in str(e.value)
    assert "hop_seconds" in str(e.value)  # the valid keys are listed


def test_unknown_top_level_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="'trian'"):
        load_config(path)


def test_unknown_override_key():
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        load_config(None, ["optim.learning_rate=0.1"])


@pytest.mark.parametrize("override,get,expected", [
    ("train.epochs=3", lambda c: c.train.epochs, 3),
    ("optim.lr=0.0001", lambda c: c.optim.lr, 1e-4),
    ("optim.lr=2", lambda c: c.optim.lr, 2.0),  # an int where a float is expected becomes a float
    ("train.amp=false", lambda c: c.train.amp, False),
    ("data.cache_dir=null", lambda c: c.data.cache_dir, None),
    ("data.cache_dir=/tmp/x", lambda c: c.data.cache_dir, "/tmp/x"),
    ("sela.update_epochs=[0, 5, 10]", lambda c: c.sela.update_epochs, [0, 5, 10]),
    ("augment.rrc_freq_scale=[0.5, 2]", lambda c: c.augment.rrc_freq_scale, (0.5, 2.0)),
    ("train.max_steps_per_epoch=7", lambda c: c.train.max_steps_per_epoch, 7),
    ("data.synth.classes=[tone_soft, rain]", lambda c: c.data.synth.classes, ["tone_soft", "rain"]),
    ("model.encoder_kwargs={d: 256}", lambda c: c.model.encoder_kwargs, {"d": 256}),
])
def test_dotted_overrides_are_typed(override, get, expected):
    value = get(load_config(None, [override]))
    assert value == expected and type(value) is type(expected)


def test_exponent_without_dot_is_a_float():
    assert load_config(None, ["optim.lr=1e-4"]).optim.lr == 1e-4


def test_later_overrides_win_and_merge_with_recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  epochs: 10\n  batch_size: 64\n")
    cfg = load_config(path, ["train.epochs=3", "train.epochs=4"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (4, 64)


@pytest.mark.parametrize("override,key", [
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=1.5", "train.epochs"),
    ("train.amp=1", "train.amp"),
    ("optim.lr=true", "optim.lr"),
    ("optim.lr=fast", "optim.lr"),
    ("augment.rrc_freq_scale=[1, 2, 3]", "augment.rrc_freq_scale"),
    ("sela.update_epochs=5", "sela.update_epochs"),
    ("sela.update_epochs=[1, x]", "sela.update_epochs[1]"),
    ("data=3", "data"),
    ("data.synth.clips_per_class=[1]", "data.synth.clips_per_class"),
])
def test_bad_types_are_rejected_by_name(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert key in str(e.value)


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train..epochs=3"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError):
        parse_override(text)


def test_frontend_preset(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("frontend:\n  preset: sela_audio\n  n_mels: 80\n")
    cfg = load_config(path)
    assert (cfg.frontend.n_fft, cfg.frontend.hop_length, cfg.frontend.n_mels) == (512, 320, 80)
    with pytest.raises(ConfigError, match="nope"):
        load_config(None, ["frontend.preset=nope"])


def test_recipe_must_exist_and_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_round_trip_through_plain_dict():
    cfg = load_config(None, ["frontend.preset=sela_audio", "augment.rrc_time_scale=[0.5, 1.5]", "sela.heads=3"])
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg


@pytest.mark.parametrize("section,key,bad", [("optim", "name", "lamb"), ("train", "device", "tpu"),
                                             ("data", "source", "youtube"), ("sela", "solver_dtype", "float16"),
                                             ("frontend", "backend", "librosa")])
def test_choice_fields_are_checked_at_recipe_load_naming_recipe_and_choices(tmp_path, section, key, bad):
    recipe = tmp_path / "bad_choice.yaml"
    recipe.write_text(f"{section}:\n  {key}: {bad}\n")
    with pytest.raises(ConfigError) as err:
        load_config(recipe)
    choices = typing.get_args(typing.get_type_hints(type(getattr(Config(), section)))[key])
    assert str(recipe) in str(err.value) and f"{section}.{key}" in str(err.value) and repr(bad) in str(err.value)
    assert all(repr(c) in str(err.value) for c in choices) and len(choices) > 1
    assert getattr(getattr(load_config(recipe, [f"{section}.{key}={choices[-1]}"]), section), key) == choices[-1]


@pytest.mark.parametrize("override,rule", [
    ("train.epochs=0", ">= 1"), ("train.epochs=-3", ">= 1"), ("train.batch_size=0", ">= 1"),
    ("train.log_every=0", ">= 1"), ("sela.lamb=0", "> 0"), ("sela.lamb=-25", "> 0"), ("sela.tol=0", "> 0"),
    ("sela.clusters=1", ">= 2"), ("sela.head_dropout=1.0", "in [0, 1)"), ("optim.lr=0", "> 0"),
    ("optim.lr=.nan", "> 0"), ("optim.step_epochs=0", ">= 1"), ("optim.momentum=1.5", "in [0, 1)"),
    ("frontend.n_mels=0", ">= 1"), ("frontend.f_max=9000", "at most half the sample rate"),
    ("frontend.norm_std=0", "> 0"), ("data.segment_seconds=0", "> 0"), ("augment.mixup_ratio=2", "in [0, 1]"),
    ("augment.rrc_freq_scale=[1.5, 0.6]", "0 < low <= high"), ("byol.ema_decay=1.1", "in [0, 1]"),
    ("sela.marginals=unifrom", "one of uniform"),
])
def test_values_out_of_range_are_refused_at_load_by_name(override, rule):
    """Every bad value stops at load, naming the key, before a cache is built or a step runs."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"<defaults> \+ overrides: {key.replace('.', '[.]')} must be .*") as err:
        load_config(None, [override])
    assert rule in str(err.value) and "\n" not in str(err.value)


def test_a_missing_marginals_file_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"sela.marginals='.*prior.npy': no such file"):
        load_config(None, [f"sela.marginals={tmp_path / 'prior.npy'}"])


@pytest.mark.parametrize("name", ["uniform", "gauss_redraw", "gauss", "gauss_selavi"])
def test_every_named_marginal_is_one_the_label_update_solves_for(name):
    """Each name config.py accepts is read by the label update: uniform as None, the Gaussian ones as (H, K)
    cluster masses summing to 1 per head; none falls through to the prior-file reader."""
    from hear_sela.config import NAMED_MARGINALS
    from hear_sela.objectives.label_store import LabelStore
    from hear_sela.objectives.label_update import update_marginals

    assert name in NAMED_MARGINALS
    cfg = load_config(None, [f"sela.marginals={name}", "sela.heads=2", "sela.clusters=5"]).sela
    store = LabelStore.initial(heads=2, n=40, clusters=5, seed=0)
    marginals, _ = update_marginals(cfg, store, n_total=40, seed=0, logits=torch.randn(2, 40, 5))
    if name == "uniform":
        assert marginals is None
    else:
        assert marginals.shape == (2, 5)
        torch.testing.assert_close(marginals.sum(1), torch.ones(2, dtype=marginals.dtype))


def test_train_cli_refuses_non_positive_epochs_before_any_work(tmp_path, capsys):
    from hear_sela.cli import main

    out = tmp_path / "run"
    assert main(["train", "demo", f"train.out_dir={out}", "train.epochs=0"]) == 1
    assert not out.exists()


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases (9**9 values once expanded) inside model.encoder_kwargs: refused while parsing,
    naming the file, instead of minutes and gigabytes before the unknown-key check."""
    import time

    lines = ["model:", "  encoder_kwargs:", "    a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml: line \d+: .*aliases expand to more than"):
        load_config(recipe)
    assert time.perf_counter() - start < 5
    recipe.write_text("model:\n  encoder_kwargs: &k {d: 32}\nsela: {heads: 2}\n")  # a small alias stays fine
    assert load_config(recipe).model.encoder_kwargs == {"d": 32}


@pytest.mark.parametrize("text,problem", [
    ("train:\n  epochs: [1, 2\n", "line 3"),  # unclosed flow sequence: reported where the parser gave up
    ("train:\n  out_dir: !!python/object/apply:os.system [echo hi]\n", "line 2"),
    ("a: &r [*r]\n", "line 1"),
])
def test_bad_yaml_is_one_line_naming_the_file_and_line(tmp_path, text, problem):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(recipe)
    msg = str(err.value)
    assert msg.startswith(f"{recipe}: {problem}:") and "\n" not in msg, msg
