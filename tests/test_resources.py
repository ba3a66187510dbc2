"""Packaged resources in a checkout: recipes by name or path, their one-line summaries, the s3prl upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from hear_sela.config import ConfigError, load_config
from hear_sela.resources import list_recipes, recipe_summary, resolve_recipe, s3prl_upstream_dir

REPO = Path(__file__).resolve().parents[1]


def test_recipes_resolve_by_name_and_path():
    assert resolve_recipe("fsd50k_sela") == REPO / "recipes" / "fsd50k_sela.yaml"
    assert resolve_recipe("demo.yaml") == REPO / "recipes" / "demo.yaml"
    assert resolve_recipe(REPO / "recipes" / "demo.yaml") == REPO / "recipes" / "demo.yaml"
    assert load_config("fsd50k_byola").name == "fsd50k_byola"


def test_unknown_recipe_names_the_packaged_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"recipe not found: nope .*packaged recipes: demo, fsd50k_byola"):
        load_config("nope")
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config(tmp_path / "demo.yaml")  # a path that does not exist is not looked up by name


def test_every_recipe_states_what_it_reproduces(tmp_path):
    names = {r.name: r.reproduces for r in list_recipes()}
    assert set(names) == {p.stem for p in (REPO / "recipes").glob("*.yaml")}
    assert names["fsd50k_sela_audiontt"] == "SeLa on the BYOL-A encoder: the head-to-head partner of fsd50k_byola.yaml."
    assert all(text.endswith(".") and len(text) > 30 for text in names.values()), names
    recipe = tmp_path / "r.yaml"
    recipe.write_text("# First sentence, on\n# two lines. Second one.\n#   hear-sela train r.yaml\nname: r\n")
    assert recipe_summary(recipe) == "First sentence, on two lines."


def test_s3prl_upstream_of_the_source_tree():
    assert s3prl_upstream_dir() == REPO / "upstream" / "hear_sela"


def test_s3prl_configs_by_name_for_run_downstream(tmp_path, capsys):
    """`-c speech_commands` names the vendored config wherever hear_sela is installed (the wheel test checks the
    packaged copy); a path is kept as given; neither is one line naming the configs and their folder."""
    from hear_sela.s3prl_compat.__main__ import main as launcher
    from hear_sela.s3prl_compat.__main__ import with_config_paths

    configs = REPO / "upstream" / "hear_sela" / "configs"
    own = tmp_path / "mine.yaml"
    own.write_text("downstream_expert: {}\n")
    args = ["-m", "train", "-c", "speech_commands", "-d", "speech_commands", "-n", "x"]
    assert with_config_paths(args) == [*args[:3], str(configs / "speech_commands.yaml"), *args[4:]]
    assert with_config_paths(["--config=emotion.yaml"]) == [f"--config={configs / 'emotion.yaml'}"]
    assert with_config_paths(["-c", str(own)]) == ["-c", str(own)]
    assert launcher(["run_downstream", "-m", "train", "-c", "speech_comands"]) == 2
    err = capsys.readouterr().err
    assert "speech_comands" in err and "speech_commands" in err and str(configs) in err and len(err.splitlines()) == 1
    assert launcher(["configs"]) == 0
    assert f"voxceleb1  {configs / 'voxceleb1.yaml'}" in capsys.readouterr().out
