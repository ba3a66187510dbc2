"""The separation recipes parse into SeparationConfig; unknown keys name the key and the file."""

from pathlib import Path

import pytest

from hear_sela.config import ConfigError
from hear_sela.separation.config import SeparationConfig, load_separation_config

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes" / "separation").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_separation_recipes_parse(recipe):
    cfg = load_separation_config(recipe, ["student.updates=3", "teacher.gate_percentile=null"])
    assert isinstance(cfg, SeparationConfig) and cfg.student.updates == 3 and cfg.teacher.gate_percentile is None


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher:\n  gate: -10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*teacher.gate"):
        load_separation_config(bad)


@pytest.mark.parametrize("override, key", [("student.loss_norm=mean", "student.loss_norm"),
                                           ("ensemble_alpha=3.0", "ensemble_alpha"),
                                           ("teacher.gate_percentile=100", "teacher.gate_percentile")])
def test_values_the_recipe_cannot_run_name_the_key_and_file(override, key):
    with pytest.raises(ConfigError, match=rf"cpu.yaml.*{key}"):
        load_separation_config(RECIPES[0], [override])
