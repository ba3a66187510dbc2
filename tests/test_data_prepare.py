"""build_records / prepare_cache dispatch and the `hear-sela prepare` command, end to end on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hear_sela.cli import main as cli_main
from hear_sela.config import ConfigError, config_from_dict
from hear_sela.data.cache import CacheError
from hear_sela.data.prepare import build_records, cache_dir_of, prepare_cache


def test_tiny_config_opens_the_shared_cache(tiny_config, tiny_cache):
    cache = prepare_cache(tiny_config, progress=False)
    assert cache.root == tiny_cache.root and len(cache) == len(tiny_cache)
    assert np.array_equal(np.asarray(cache.features[:3]), np.asarray(tiny_cache.features[:3]))


def test_tiny_config_refuses_to_rebuild_the_shared_cache(tiny_config):
    tiny_config.frontend.hop_length = 320
    with pytest.raises(CacheError, match="hop_length 160 -> 320"):
        prepare_cache(tiny_config, progress=False)


def test_default_locations_under_out_dir(tmp_path):
    cfg = config_from_dict({"data": {"num_workers": 0, "segment_seconds": 1.0, "hop_seconds": 1.0,
                                     "synth": {"clips_per_class": 1, "clip_seconds": 1.0,
                                               "classes": ["rain", "bell", "vowel_i"]}},
                            "train": {"out_dir": str(tmp_path / "run")}})
    assert cache_dir_of(cfg) == tmp_path / "run" / "cache"
    cache = prepare_cache(cfg, progress=False)
    assert (tmp_path / "run" / "corpus" / "labels.csv").is_file()
    assert [c.clip_id for c in cache.clips] == ["bell/bell_0000", "rain/rain_0000", "vowel_i/vowel_i_0000"]
    assert [c.labels for c in cache.clips] == [("bell",), ("rain",), ("vowel_i",)]
    # another synth seed rewrites the corpus (same ids and paths) and the source id makes the cache stale
    cfg.data.synth.seed = 1
    cfg.data.on_stale = "error"
    with pytest.raises(CacheError, match="source"):
        prepare_cache(cfg, progress=False)


def test_folder_source_uses_root_labels_csv(tmp_path, tiny_corpus):
    cfg = config_from_dict({"data": {"source": "folder", "root": str(tiny_corpus.root)}})
    assert build_records(cfg.data, tmp_path) == tiny_corpus.records
    other = tmp_path / "plain"
    other.mkdir()
    sf.write(other / "x.wav", np.zeros(800, dtype=np.float32), 16000)
    cfg = config_from_dict({"data": {"source": "folder", "root": str(other)}})
    assert [(r.clip_id, r.labels) for r in build_records(cfg.data, tmp_path)] == [("x", ())]


@pytest.mark.parametrize("data,phrase", [
    ({"source": "youtube"}, "data.source must be one of"),
    ({"source": "folder"}, "needs data.root"),
    ({"source": "fsd50k"}, "needs data.root"),
])
def test_build_records_errors(tmp_path, data, phrase):
    with pytest.raises(ConfigError, match=phrase):
        build_records(config_from_dict({"data": data}).data, tmp_path)


def _recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: prep\ndata:\n  num_workers: 0\n  segment_seconds: 1.0\n  hop_seconds: 0.5\n"
                    "  synth:\n    clips_per_class: 1\n    clip_seconds: 1.5\n    classes: [knock, chirp_up]\n")
    return path


def test_prepare_command_builds_and_summarises(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["prepare", str(_recipe(tmp_path)), f"train.out_dir={out}", "--no-progress", "--cpu"]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "segments:     4 x 64 mels x 101 frames" in text  # 1.5 s clips, 1 s segments, 0.5 s hop: 2 each
    assert "clips:        2 used, 0 bad file(s) skipped" in text and "audio:        3.0 s" in text
    assert (out / "cache" / "manifest.json").is_file()
    assert cli_main(argv) == 0  # a rerun opens the finished cache
    assert "this call" in capsys.readouterr().out
    assert cli_main([*argv, "--rebuild"]) == 0


def test_prepare_command_reports_errors_in_one_line(tmp_path, caplog):
    recipe = _recipe(tmp_path)
    base = ["prepare", str(recipe), f"train.out_dir={tmp_path / 'run'}"]
    assert cli_main([*base, "--no-progress"]) == 0
    assert cli_main([*base, "frontend.preset=sela_audio", "data.on_stale=error", "--no-progress"]) == 1
    assert "stale feature cache" in caplog.text and "n_fft 1024 -> 512" in caplog.text
    assert cli_main([*base, "data.bogus=1"]) == 1
    assert "data.bogus" in caplog.text
    assert cli_main(["prepare", str(tmp_path / "none.yaml")]) == 1
    assert "recipe not found" in caplog.text
