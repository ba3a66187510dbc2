"""`hear-sela ablate`: the variant files, the table writer on made-up run records, and (slow) the runner end to end
on a tiny synth corpus: a failed run never drops the others, a rerun skips finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hear_sela.analysis.ablation import churn, clip_scores, mean_pairwise_nmi, reference_labels, write_ablation_table
from hear_sela.commands.ablate import find_variants, read_variant
from hear_sela.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "recipes" / "ablations" / "overrides"


def test_table_writer_on_made_up_records(tmp_path: Path):
    records = [
        {"variant": "a", "seed": 0, "status": "done", "overrides": ["x=1"], "nmi": 0.5, "ami": 0.2, "churn": 0.1,
         "train_minutes": 2.0},
        {"variant": "a", "seed": 1, "status": "done", "overrides": ["x=1"], "nmi": 0.7, "ami": 0.4, "churn": 0.3,
         "train_minutes": 4.0},
        {"variant": "a", "seed": 2, "status": "failed", "overrides": ["x=1"], "error": "boom\nValueError: bad"},
        {"variant": "b", "seed": 0, "status": "done", "overrides": [], "nmi": 0.6, "ami": 0.1, "churn": 0.2,
         "train_minutes": 1.0},
        {"variant": "c", "seed": 0, "status": "done", "overrides": ["m=/r/o/prior.npy", "x=1"], "nmi": 0.6},
    ]
    files = write_ablation_table(records, tmp_path, ["# title"], variants=["b", "a", "c"])
    table = pd.read_csv(files["csv"])
    assert list(table["variant"]) == ["b", "a", "c"]
    assert table.set_index("variant").loc["c", "overrides"] == "m=/r/o/prior.npy x=1"  # the CSV keeps the path
    a = table.set_index("variant").loc["a"]
    # mean and sample standard deviation of 0.5 and 0.7: 0.6 and 0.1414
    assert a["nmi_mean"] == pytest.approx(0.6) and a["nmi_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1), abs=1e-5)
    assert (a["seeds_done"], a["seeds_failed"]) == (2, 1)
    assert table.set_index("variant").loc["b", "nmi_std"] == 0.0  # one seed: no spread
    md = files["md"].read_text()
    assert md.startswith("# title")
    assert "| a | 2 (1 failed) | 0.600 ± 0.141 | 0.300 ± 0.141 | 0.200 ± 0.141 | 3.0 ± 1.4 | x=1 |" in md
    assert "| b | 1 | 0.600 | 0.100 | 0.200 | 1.0 |  |" in md
    assert "| m=prior.npy x=1 |\n" in md  # the table shows it as the variant file writes it
    assert "- a seed 2: ValueError: bad" in md
    assert "downstream_mean" not in table  # no run had it: no column
    assert "tasks_csv" not in files and "per task" not in md


def test_per_task_table_beside_the_mean(tmp_path: Path):
    records = [{"variant": v, "seed": s, "status": "done", "overrides": [], "downstream": 0.5,
                "task_scores": {"pitch": p, "speakers": k}}
               for v, s, p, k in [("a", 0, 0.6, 0.9), ("a", 1, 0.8, 0.9), ("b", 0, 0.4, 0.7)]]
    records.append({"variant": "a", "seed": 2, "status": "failed", "overrides": [], "task_scores": {"pitch": 0.0}})
    files = write_ablation_table(records, tmp_path, variants=["b", "a"])
    tasks = pd.read_csv(files["tasks_csv"]).set_index("variant")
    assert list(tasks.index) == ["b", "a"] and tasks.loc["a", "seeds"] == 2  # the failed run is left out
    assert tasks.loc["a", "pitch_mean"] == pytest.approx(0.7) and tasks.loc["a", "speakers_std"] == 0.0
    md = files["md"].read_text()
    assert "| a | 2 | 0.700 ± 0.141 | 0.900 |" in md and "| b | 1 | 0.400 | 0.700 |" in md


def test_churn_skips_the_first_update_and_relabels():
    history = [{"changed": 0.98}, {"changed": 0.4}, {"changed": 0.9, "relabel": 1.0}, {"changed": 0.2}]
    assert churn(history) == (pytest.approx(0.3), 0.2)
    assert np.isnan(churn([{"changed": 0.9}])[0])


def test_multi_label_clips_are_scored_on_the_label_at_the_chosen_position():
    # 4 clips x 2 segments; the corpus script's labels: package, folder, category
    sets = [("pkg_a", "pkg_a/x", "music"), ("pkg_a", "pkg_a/y", "music"), ("pkg_b", "pkg_b", "sfx"), ("pkg_c",)]
    assert reference_labels(sets, 0) == [("pkg_a",), ("pkg_a",), ("pkg_b",), ("pkg_c",)]
    assert reference_labels(sets, 2) == [("music",), ("music",), ("sfx",), ("pkg_c",)]  # short list: its last
    seg_clip = np.repeat(np.arange(4), 2)
    by_package = np.array([[5, 5, 5, 5, 1, 1, 7, 7]])  # (H=1, S): one cluster per package
    conf = np.ones_like(by_package, dtype=np.float64)
    assert clip_scores(by_package, conf, seg_clip, sets, 8, 0) == pytest.approx({"nmi": 1.0, "ami": 1.0})
    assert clip_scores(by_package, conf, seg_clip, sets, 8, 1)["nmi"] < 1.0  # the folders split pkg_a
    assert np.isnan(clip_scores(by_package, conf, seg_clip, sets, 8, None)["nmi"])
    with pytest.raises(ValueError, match="no clip of its data has a reference label"):
        clip_scores(by_package, conf, seg_clip, [()] * 4, 8, 0)


def test_mean_pairwise_nmi():
    a = np.array([0, 0, 1, 1])
    assert mean_pairwise_nmi(np.stack([a, 1 - a, a])) == pytest.approx(1.0)  # the same partition thrice
    assert mean_pairwise_nmi(np.stack([a, np.array([0, 1, 0, 1])])) == pytest.approx(0.0)  # independent
    assert np.isnan(mean_pairwise_nmi(a[None]))


def test_variant_files(tmp_path: Path):
    (tmp_path / "prior.npy").write_bytes(b"")
    (tmp_path / "v.yaml").write_text("sela.marginals: prior.npy\nsela.confidence: [posterior, size]\n"
                                     "sela.confidence_alpha: 0.5\ntrain.out_dir: rel\n")
    assert read_variant(tmp_path / "v.yaml") == [
        f"sela.marginals={tmp_path / 'prior.npy'}",  # a path setting whose file sits beside the variant
        'sela.confidence=["posterior", "size"]', "sela.confidence_alpha=0.5", "train.out_dir=rel"]
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert read_variant(tmp_path / "empty.yaml") == []
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="list.yaml: a variant is a mapping"):
        read_variant(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match=r"--only \['nope'\]"):
        find_variants(tmp_path, "v,nope")


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_variants_load_on_the_real_recipe(path: Path):
    cfg = load_config(REPO / "recipes" / "real_sela.yaml", read_variant(path))
    assert cfg.train.epochs == 8  # only sela.* settings change


TINY = {
    "name": "tiny_ablation",
    "data": {"source": "synth", "segment_seconds": 2.0, "hop_seconds": 2.0, "num_workers": 0,
             "synth": {"clips_per_class": 2, "clip_seconds": 4.0,
                       "classes": ["tone_bright", "noise_low", "clicks_fast"]}},
    "frontend": {"n_mels": 16},
    "model": {"encoder": "audiontt", "encoder_kwargs": {"d": 16, "channels": 4}},
    "augment": {"crop_frames": 32, "mixup_memory": 8},
    "sela": {"heads": 2, "clusters": 4, "lamb": 10.0, "update_epochs": [0, 1, 2], "update_batch_size": 8},
    "optim": {"name": "adam", "lr": 1e-3},
    "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "log_every": 1},
}


@pytest.mark.slow
def test_ablate_end_to_end_on_a_tiny_synth_corpus(tmp_path: Path, capsys):
    from hear_sela import cli
    from hear_sela.data.synth import SYNTH_CLASSES

    assert set(TINY["data"]["synth"]["classes"]) <= set(SYNTH_CLASSES)
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(TINY))
    variants = tmp_path / "variants"
    variants.mkdir()
    (variants / "baseline.yaml").write_text("{}\n")
    (variants / "all_a1.yaml").write_text((SHIPPED / "conf_all_a1.yaml").read_text())
    (variants / "bad_key.yaml").write_text("sela.nosuch: 1\n")
    (variants / "byola.yaml").write_text((SHIPPED / "objective_byola.yaml").read_text())  # no labels to score
    (variants / "bad_prior.yaml").write_text((SHIPPED / "marg_prior.yaml").read_text())  # K = 100, not 4
    (variants / "prior_power05_k100.npy").write_bytes((SHIPPED / "prior_power05_k100.npy").read_bytes())
    out = tmp_path / "out"
    argv = ["ablate", str(variants), "--base", str(base), "--seeds", "0,1", "--out", str(out), "--threads", "1",
            "--set", "train.epochs=1", "--set", "sela.update_epochs=[0,1]"]
    assert cli.main(argv) == 1  # two variants fail
    table = pd.read_csv(out / "ablation.csv").set_index("variant")
    assert list(table.index) == ["all_a1", "bad_key", "bad_prior", "baseline", "byola"]
    assert table.loc["byola", "seeds_done"] == 2 and np.isnan(table.loc["byola", "nmi_mean"])
    assert table.loc["byola", "train_minutes_mean"] > 0
    assert table.loc["baseline", "seeds_done"] == 2 and table.loc["all_a1", "seeds_done"] == 2
    assert table.loc["bad_key", "seeds_failed"] == 2 and table.loc["bad_prior", "seeds_failed"] == 2
    for name in ("baseline", "all_a1"):
        row = table.loc[name]
        assert 0 <= row["nmi_mean"] <= 1 and 0 <= row["head_nmi_mean"] <= 1 and row["train_minutes_mean"] > 0
        assert 0 <= row["churn_mean"] <= 1 and row["nmi_std"] >= 0
    record = json.loads((out / "baseline" / "seed1" / "run.json").read_text())
    assert record["status"] == "done" and "train.seed=1" in record["command_overrides"]
    log = [json.loads(x) for x in (out / "all_a1" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["confidence_quantity"] < 1 for r in log if r["kind"] == "labels"] == [True, True]  # alpha 1 applied
    md = (out / "ablation.md").read_text()
    assert "unknown config key 'sela.nosuch'" in md and "marginals of shape (100,)" in md
    # the shared corpus and cache: one of each
    assert (out / "cache").is_dir() and not (out / "baseline" / "seed0" / "cache").exists()
    # a rerun skips the finished runs (their records and checkpoints stay) and retries the failed ones
    final = out / "baseline" / "seed0" / "final.pt"
    stamp = final.stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main([*argv, "--only", "baseline"]) == 0
    assert final.stat().st_mtime_ns == stamp
    printed = capsys.readouterr().out
    assert "| baseline | 2 |" in printed
    assert "| all_a1 | 2 |" in printed  # the runs of an earlier invocation stay in the table
    # --rescore: scores recomputed from the checkpoints, nothing trained; the failed runs stay failed
    record_path = out / "baseline" / "seed0" / "run.json"
    record_path.write_text(json.dumps({**record, "nmi": -1.0, "seed": 0,
                                       "command_overrides": json.loads(record_path.read_text())["command_overrides"]}))
    assert cli.main([*argv, "--rescore"]) == 1
    assert final.stat().st_mtime_ns == stamp
    assert 0 <= json.loads(record_path.read_text())["nmi"] <= 1
    # a seed never run is no row (and no folder), not a failure
    assert cli.main([*argv, "--rescore", "--seeds", "5", "--only", "baseline"]) == 0
    assert not (out / "baseline" / "seed5").exists()
    assert "| baseline | 2 |" in (out / "ablation.md").read_text()


def test_downstream_is_the_mean_row_of_the_heareval_comparison(tmp_path: Path, monkeypatch):
    import argparse

    import hear_sela.checkpoint as checkpoint
    import hear_sela.evaluation.runner as runner
    from hear_sela.commands.ablate import _downstream
    from hear_sela.evaluation.tables import CLIPS_COLUMN

    seen = {}

    def fake_evaluate(tasks_dir, specs, out_dir, options):
        seen.update(tasks=tasks_dir, alias=specs[0].alias, grid=options.grid)
        return pd.DataFrame({"task": ["t1", "t2", "mean"], "metric": ["a", "b", "(mean over tasks)"],
                             CLIPS_COLUMN: ["12", "240 (5 folds)", ""], specs[0].alias: [0.25, 0.75, 0.5]})

    monkeypatch.setattr(checkpoint, "export_encoder", lambda src, out: Path(src))
    monkeypatch.setattr(runner, "evaluate_modules", fake_evaluate)
    args = argparse.Namespace(tasks_dir="tasks", grid="fast", grid_points=None)
    (tmp_path / "final.pt").write_bytes(b"")
    mean, seconds, per_task = _downstream(tmp_path / "final.pt", tmp_path, "v-s0", args)
    assert mean == 0.5 and seconds >= 0 and seen == {"tasks": "tasks", "alias": "v-s0", "grid": "fast"}
    assert per_task == {"t1": 0.25, "t2": 0.75}
