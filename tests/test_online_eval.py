"""Online evaluation: dev-task probes of the frozen encoder during training, logged as curves.

The logged point at step 0 is an offline probe of the untrained initialisation; the last is an offline probe of the
final weights; the evaluation leaves training bitwise unchanged; a resumed run continues the curve without a
duplicate or a missing point; only rank 0 evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hear_sela.checkpoint import export_untrained, load_checkpoint, load_encoder_bundle
from hear_sela.config import ConfigError
from hear_sela.data.hear_task_read import read_scene_task
from hear_sela.data.synth_tasks import write_hear_tasks
from hear_sela.training.loop import train
from hear_sela.training.online_eval import (
    OnlineEvaluator,
    probe_task,
    probe_task_folds,
    scene_embeddings,
    snapshot_path,
)
from hear_sela.training.state import read_checkpoint
from helpers.training import cpu_config, memory_cache, run_training_script

TASK = "synth_scene_multiclass"


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks")
    write_hear_tasks(out, seed=0, size=30, n_classes=3)  # a multiclass scene task among others: only it is probed
    return out


def eval_records(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "eval"]


def offline_scores(weights: Path, tasks_dir: Path, max_clips: int) -> dict[str, float]:
    """The same probes through the public HEAR module on an export, outside any training process."""
    from hear_sela.hear import load_model

    task = read_scene_task(tasks_dir / TASK, max_clips)
    return probe_task(scene_embeddings(load_model(str(weights)), task.audio), task, ["knn", "logreg"])


def single_thread_train(cfg) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, cache=memory_cache())
    finally:
        torch.set_num_threads(threads)


def test_curve_starts_at_the_untrained_init_and_ends_at_the_final_weights(tmp_path, tasks_dir):
    run = tmp_path / "run"
    cfg = cpu_config(run, "sela", **{"online_eval.tasks_dir": str(tasks_dir), "online_eval.every_steps": 4,
                                      "online_eval.max_clips": 24, "train.epochs": 3,
                                      "online_eval.keep_exports": True})
    single_thread_train(cfg)
    records = eval_records(run)
    assert [r["step"] for r in records] == [0, 4, 8, 12]  # 3 epochs x 4 steps; the end (12) falls on the grid
    assert set(records[0]) >= {f"{TASK}/knn", f"{TASK}/logreg", "mean/knn", "mean/logreg", "seconds", "cpu_seconds"}
    assert not any(k.startswith("synth_scene_multilabel") or k.startswith("synth_events") for k in records[0])
    init = export_untrained(run / "final.pt", tmp_path / "init.pt")
    first = offline_scores(init, tasks_dir, 24)
    last = offline_scores(run / "final.pt", tasks_dir, 24)
    kept = offline_scores(snapshot_path(run, 4), tasks_dir, 24)  # the weights behind a middle point
    assert sorted(p.name for p in (run / "steps").iterdir()) == [f"step{s:07d}.pt" for s in (0, 4, 8, 12)]
    for probe in ("knn", "logreg"):
        assert records[1][f"{TASK}/{probe}"] == pytest.approx(kept[probe], abs=1e-12)
        assert records[0][f"{TASK}/{probe}"] == pytest.approx(first[probe], abs=1e-12)
        assert records[-1][f"{TASK}/{probe}"] == pytest.approx(last[probe], abs=1e-12)
        assert records[0][f"mean/{probe}"] == records[0][f"{TASK}/{probe}"]  # one task: its mean is itself
    assert [r["cpu_seconds"] for r in records] == sorted(r["cpu_seconds"] for r in records)


def test_untrained_export_is_the_init_training_starts_from(tmp_path):
    """export_untrained rebuilds the weights a run's seed gives (what the step-0 point is measured on)."""
    from hear_sela.training.state import build_objective

    cfg = cpu_config(tmp_path / "run", "sela", **{"train.epochs": 1})
    single_thread_train(cfg)
    init = load_encoder_bundle(export_untrained(tmp_path / "run" / "final.pt", tmp_path / "init.pt"))
    init = init.encoder.state_dict()
    fresh = build_objective(cfg, 37, torch.device("cpu")).encoder.state_dict()
    trained = load_checkpoint(tmp_path / "run" / "final.pt")["encoder"]
    for k, v in fresh.items():
        assert torch.equal(init[k], v), k
    assert any(not torch.equal(init[k], trained[k]) for k in init)  # and not the trained weights
    # `hear-sela evaluate --module untrained:CKPT` evaluates exactly that export, as hear_sela
    from hear_sela.evaluation.specs import parse_module_spec, untrained_export

    spec = untrained_export(parse_module_spec(f"untrained:{tmp_path / 'run' / 'final.pt'}"), tmp_path / "u")
    assert spec.module == "hear_sela" and spec.alias == "untrained:final"
    bundle = load_encoder_bundle(spec.checkpoint)
    assert all(torch.equal(bundle.encoder.state_dict()[k], v) for k, v in fresh.items())
    assert bundle.config.frontend.norm_mean == load_checkpoint(tmp_path / "run" / "final.pt")["config"][
        "frontend"]["norm_mean"]  # the run's normalisation statistics, not the recipe's defaults


def test_untrained_recipe_without_a_feature_cache_is_refused(tmp_path):
    from hear_sela.evaluation.specs import parse_module_spec, untrained_export

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{cache_dir: {tmp_path / 'nocache'}}}\n")
    with pytest.raises(ConfigError, match="no feature cache"):
        untrained_export(parse_module_spec(f"untrained:{recipe}"), tmp_path / "u")


def test_online_evaluation_leaves_training_bitwise_unchanged(tmp_path, tasks_dir):
    plain, probed = tmp_path / "plain", tmp_path / "probed"
    single_thread_train(cpu_config(plain, "sela", **{"train.epochs": 2}))
    single_thread_train(cpu_config(probed, "sela", **{"train.epochs": 2, "online_eval.tasks_dir": str(tasks_dir),
                                                       "online_eval.every_steps": 2}))
    a, b = read_checkpoint(plain / "final.pt"), read_checkpoint(probed / "final.pt")
    for k, v in a.encoder_state.items():
        assert torch.equal(v, b.encoder_state[k]), k
    assert torch.equal(a.label_store.labels, b.label_store.labels)
    assert len(eval_records(probed)) == 5 and not eval_records(plain)


def test_resumed_run_continues_the_curve_without_duplicates_or_gaps(tmp_path, tasks_dir):

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    over = [f"online_eval.tasks_dir={tasks_dir}", "online_eval.every_steps=3", "online_eval.max_clips=18",
            "train.ckpt_every_steps=3"]
    assert run_training_script(ref, "sela", *over).returncode == 0
    # the newest checkpoint on disk is step 6: the evaluation at 6 ran after it and runs again on resume
    died = run_training_script(killed, "sela", "--kill-at-save", "8", *over)
    assert died.returncode == -9, died.stderr[-2000:]
    assert [r["step"] for r in eval_records(killed)] == [0, 3, 6]
    resumed = run_training_script(killed, "sela", "--resume", *over)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [r["step"] for r in eval_records(killed)]
    assert steps == [0, 3, 6, 9, 12, 15, 16]  # 4 epochs x 4 steps, every 3 steps and the end
    strip = [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in eval_records(ref)]
    assert strip == [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in eval_records(killed)]
    # the run's CPU time goes on from the checkpoint's, not from zero
    cpu = [r["cpu_seconds"] for r in eval_records(killed)]
    assert cpu == sorted(cpu)


def test_only_rank_zero_evaluates(tmp_path, tasks_dir, monkeypatch):
    from hear_sela import distributed as dist

    cfg = cpu_config(tmp_path, "sela", **{"online_eval.tasks_dir": str(tasks_dir)})
    evaluator = OnlineEvaluator(cfg, "sela")
    written = []

    def refuse(*args, **kwargs):
        raise AssertionError("a rank other than 0 evaluated")

    monkeypatch.setattr(dist, "is_main", lambda: False)
    monkeypatch.setattr(evaluator, "evaluate", refuse)
    assert evaluator.maybe_run(torch.nn.Linear(1, 1), cfg, 0, lambda *r: written.append(r), 0.0) is None
    assert written == [] and evaluator.last_step == 0  # it still counts the point as done, as rank 0 does


def test_online_eval_settings_are_checked_before_training(tmp_path, tasks_dir):
    with pytest.raises(ConfigError, match="not a folder"):
        OnlineEvaluator(cpu_config(tmp_path, "sela", **{"online_eval.tasks_dir": str(tmp_path / "none")}), "sela")
    with pytest.raises(ConfigError, match="not multiclass scene tasks"):
        OnlineEvaluator(cpu_config(tmp_path, "sela", **{"online_eval.tasks_dir": str(tasks_dir),
                                                         "online_eval.tasks": ["synth_events"]}), "sela")


def test_probe_scores_follow_the_folds():
    """A separable task scores 1.0; labels shuffled against the embeddings score near chance."""
    from hear_sela.data.hear_task_read import SceneTaskClips

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    emb = rng.normal(size=(120, 8)) + 6.0 * np.eye(3, 8)[labels]
    task = SceneTaskClips("t", np.zeros((120, 1), np.float32), labels, np.arange(120) % 4,
                          ("fold00", "fold01", "fold02", "fold03"), "presplit_kfold", ("a", "b", "c"))
    assert probe_task(emb, task, ["knn", "logreg"]) == {"knn": 1.0, "logreg": 1.0}
    shuffled = SceneTaskClips("t", task.audio, rng.permutation(labels), task.splits, task.split_names,
                              task.split_mode, task.classes)
    assert all(v < 0.6 for v in probe_task(emb, shuffled, ["knn", "logreg"]).values())


def test_probe_fold_scores_and_their_spread():
    """One score per held-out fold, whose mean is probe_task's; a fold whose labels are shuffled against the
    embeddings is the one that scores low, and the table's fold_std is the spread of the per-fold scores."""
    import pandas as pd

    from hear_sela.analysis.probe import with_means
    from hear_sela.data.hear_task_read import SceneTaskClips

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    emb = rng.normal(size=(120, 8)) + 6.0 * np.eye(3, 8)[labels]
    splits = np.arange(120) % 4
    labels[splits == 3] = rng.permutation(labels[splits == 3])
    task = SceneTaskClips("t", np.zeros((120, 1), np.float32), labels, splits,
                          ("fold00", "fold01", "fold02", "fold03"), "presplit_kfold", ("a", "b", "c"))
    folds = probe_task_folds(emb, task, ["knn", "logreg"])
    for probe, scores in folds.items():
        assert len(scores) == 4 and min(scores[:3]) > 0.9 and scores[3] < 0.7
        assert probe_task(emb, task, ["knn", "logreg"])[probe] == pytest.approx(np.mean(scores))
    table = pd.DataFrame([{"weights": "w", "task": "t", "part": "all", "probe": p, "score": np.mean(v),
                           "fold_std": np.std(v, ddof=1)} for p, v in folds.items()])
    spread = with_means(table, "fold_std")
    assert spread["t"].tolist() == pytest.approx([np.std(folds["knn"], ddof=1), np.std(folds["logreg"], ddof=1)])


def test_curves_read_every_eval_record_and_summarise_against_the_init(tmp_path, capsys):
    from hear_sela.analysis.curves import read_curves
    from hear_sela.cli import main as cli_main

    run = tmp_path / "runA"
    run.mkdir()
    records = [{"kind": "train", "step": 0, "loss": 1.0},
               {"kind": "eval", "step": 0, "a/logreg": 0.5, "a/knn": 0.4, "mean/logreg": 0.5, "mean/knn": 0.4,
                "seconds": 1.0, "cpu_seconds": 0.0},
               {"kind": "eval", "step": 10, "a/logreg": 0.7, "a/knn": 0.45, "mean/logreg": 0.7, "mean/knn": 0.45,
                "seconds": 1.0, "cpu_seconds": 3600.0},
               {"kind": "eval", "step": 20, "a/logreg": 0.6, "a/knn": 0.5, "mean/logreg": 0.6, "mean/knn": 0.5,
                "seconds": 1.0, "cpu_seconds": 7200.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    curves = read_curves(run)
    assert len(curves) == 12 and set(curves.probe) == {"logreg", "knn"} and set(curves.task) == {"a", "mean"}
    assert curves[curves.step == 10].cpu_hours.unique().tolist() == [1.0]
    out = tmp_path / "fig" / "curves.png"
    assert cli_main(["curves", f"A={run}", str(run / "metrics.jsonl"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "A: mean logreg init 0.500, best 0.700 at step 10 (+0.200), last 0.600 at step 20" in printed
    assert out.stat().st_size > 10_000 and out.with_suffix(".csv").is_file()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text(json.dumps(records[0]) + "\n")
    assert cli_main(["curves", str(tmp_path / "empty"), "--out", str(out)]) == 1  # one line: no eval records
    assert "no online evaluation records" in capsys.readouterr().err


def test_probe_command_scores_what_the_online_evaluation_logged(tmp_path, tasks_dir, capsys):
    """`hear-sela probe` on a run's final weights and on untrained:CKPT gives the first and last online-evaluation
    points; --parts adds the embedding's parts (one for audiontt v1: all)."""
    import pandas as pd

    from hear_sela.cli import main as cli_main

    run = tmp_path / "run"
    single_thread_train(cpu_config(run, "sela", **{"online_eval.tasks_dir": str(tasks_dir),
                                                    "online_eval.max_clips": 24, "train.epochs": 1}))
    records = eval_records(run)
    out = tmp_path / "probe.csv"
    assert cli_main(["probe", f"init=untrained:{run / 'final.pt'}", str(run / "final.pt"), "--tasks-dir",
                     str(tasks_dir), "--max-clips", "24", "--parts", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table.weights) == {"init", "final"} and set(table.part) == {"all"}
    for name, record in (("init", records[0]), ("final", records[-1])):
        for probe in ("knn", "logreg"):
            score = table[(table.weights == name) & (table.probe == probe)].score.item()
            assert score == pytest.approx(record[f"{TASK}/{probe}"], abs=1e-12)
    assert table.fold_std.isna().all()  # the synth task has one test split: no spread to measure
    printed = capsys.readouterr().out
    assert "mean" in printed and "fold-to-fold spread" in printed


def test_probe_command_scores_the_log_mel_floor(tmp_path, tasks_dir):
    """`logmel` in place of weights probes hear_sela.baselines.logmel's scene embedding (per-bin mean and std)."""
    import pandas as pd

    from hear_sela.baselines import logmel
    from hear_sela.cli import main as cli_main

    out = tmp_path / "probe.csv"
    assert cli_main(["probe", "logmel", "--tasks-dir", str(tasks_dir), "--max-clips", "24", "--parts",
                     "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table.weights) == {"logmel"} and set(table.part) == {"all"}
    task = read_scene_task(tasks_dir / TASK, 24, seed=0)
    model = logmel.load_model()
    expected = probe_task(logmel.get_scene_embeddings(torch.from_numpy(task.audio), model).numpy(), task,
                          ["knn", "logreg"])
    for probe in ("knn", "logreg"):
        assert table[table.probe == probe].score.item() == pytest.approx(expected[probe], abs=1e-12)


def test_audiontt2022_embedding_parts_are_its_conv_map_and_its_mlp():
    from hear_sela.encoders import build_encoder

    cfg = cpu_config("/tmp/unused", "sela", **{"model.encoder": "audiontt2022",
                                               "model.encoder_kwargs": {"d": 96, "channels": 4, "mlp_hidden": 16}})
    enc = build_encoder(cfg).eval()
    parts = enc.embedding_parts()
    x = torch.randn(2, 1, 16, 32)
    feats = enc.forward_features(x)  # (B, T', D): the conv map stacked with the MLP of it
    conv = enc.features(x).permute(0, 3, 1, 2).flatten(2)  # (B, T', C*F/4)
    assert parts["conv"] == slice(0, 16) and parts["mlp"] == slice(16, 96)
    torch.testing.assert_close(feats[..., parts["conv"]], conv)
    torch.testing.assert_close(feats[..., parts["mlp"]], enc.fc(conv))
