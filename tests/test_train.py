"""The training loop on CPU: learning on a separable toy problem, logging, aborts, resume guards, recipes, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hear_sela.checkpoint import load_checkpoint, load_encoder_bundle, save_checkpoint
from hear_sela.config import ConfigError, load_config
from hear_sela.data.segment_labels import LABEL_COLUMNS
from hear_sela.training.loop import NonFiniteLossError, train
from hear_sela.training.state import ResumeError, read_checkpoint
from helpers.training import assert_same, cpu_config, memory_cache

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def records(out_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_sela_loss_decreases_on_a_separable_problem(tmp_path: Path):
    # labels fixed after the first update, augmentation off: the network must fit them
    off = {f"augment.{k}": False for k in ("rrc", "mixup", "specaugment", "linear_fader", "random_gain")}
    # (as many clusters as the toy data has classes, so the first labels follow its structure)
    cfg = cpu_config(tmp_path, **off, **{"sela.update_epochs": [0], "sela.clusters": 3, "train.epochs": 6,
                                          "optim.name": "adam", "optim.lr": 1e-2})
    train(cfg, cache=memory_cache())
    loss = [r["loss"] for r in records(tmp_path, "train")]
    assert len(loss) == 24
    assert np.mean(loss[-4:]) < 0.7 * np.mean(loss[:4])


def test_byol_loss_decreases(tmp_path: Path):
    cfg = cpu_config(tmp_path, "byol", **{"train.epochs": 6, "optim.name": "adam", "optim.lr": 3e-3})
    train(cfg, cache=memory_cache())
    loss = [r["loss"] for r in records(tmp_path, "train")]
    assert np.mean(loss[-4:]) < 0.8 * np.mean(loss[:4])  # 2 - 2 cos summed over both directions, from ~5.3
    bundle = load_encoder_bundle(tmp_path / "final.pt")  # the checkpoint is an encoder bundle too
    assert bundle.objective == "byol" and bundle.config.frontend.norm_mean is not None


def test_label_updates_are_logged_with_their_metrics(tmp_path: Path):
    train(cpu_config(tmp_path, **{"train.epochs": 2, "sela.update_epochs": [0, 1]}), cache=memory_cache())
    upd = records(tmp_path, "labels")
    assert [r["step"] for r in upd] == [0, 4]
    for key in ("changed", "size_min", "size_max", "nmi_prev", "solver_iterations", "solver_seconds"):
        assert all(key in r for r in upd), key
    assert 0 <= upd[1]["changed"] <= 1 and 0 <= upd[1]["nmi_prev"] <= 1
    store = read_checkpoint(tmp_path / "final.pt").label_store
    assert store.updates == 2 and len(store.history) == 2
    # the logged sizes are those of the labels the update stored (counted here independently)
    sizes = torch.stack([torch.bincount(h, minlength=6) for h in store.labels])  # (H, K), the last update's
    assert (int(sizes.min()), int(sizes.max())) == (upd[1]["size_min"], upd[1]["size_max"])
    assert upd[1]["empty_clusters"] == pytest.approx(float((sizes == 0).sum(1).float().mean()))
    assert int(sizes.sum()) == 3 * 37
    assert (tmp_path / "tb").is_dir() and any((tmp_path / "tb").iterdir())


def test_non_finite_loss_aborts_with_a_clear_message(tmp_path: Path):
    cache = memory_cache()
    cache.features[5, 3, 4] = np.nan  # one corrupt value in the cache
    with pytest.raises(NonFiniteLossError, match="non-finite training loss .* step"):
        train(cpu_config(tmp_path / "nan", "byol", **{"train.ckpt_every_steps": 1}), cache=cache)
    assert not (tmp_path / "nan" / "final.pt").exists()
    last = tmp_path / "nan" / "last.pt"
    if last.exists():  # whatever was saved holds finite weights only
        assert all(torch.isfinite(v).all() for v in load_checkpoint(last)["encoder"].values() if v.is_floating_point())
    # divergence: a huge learning rate makes the weights, then the loss, explode
    with pytest.raises(NonFiniteLossError, match="Lower optim.lr"):
        train(cpu_config(tmp_path / "lr", **{"optim.lr": 1e30, "optim.clip_grad": 0.0}), cache=memory_cache())


def test_resume_guards(tmp_path: Path):
    cfg = cpu_config(tmp_path, **{"train.epochs": 1})
    final = train(cfg, cache=memory_cache())
    with pytest.raises(ResumeError, match="--resume"):
        train(cfg, cache=memory_cache())
    assert train(cfg, resume="auto", cache=memory_cache()) == tmp_path / "last.pt"  # finished: nothing to do
    assert load_checkpoint(final)["finished"]
    with pytest.raises(ValueError, match="train.objective is 'sela'"):
        train(cpu_config(tmp_path, "byol", **{"train.epochs": 1}), resume=str(final), cache=memory_cache())


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_parse(recipe: Path):
    cfg = load_config(recipe)
    text = recipe.read_text()
    assert text.startswith("#") and "hear-sela train" in text  # header names its launch line
    assert cfg.train.objective in ("sela", "byol")


def test_recipe_settings_that_define_the_comparison():
    sela = load_config(RECIPES[0].with_name("fsd50k_sela.yaml"))
    assert (sela.model.encoder, sela.sela.heads, sela.sela.clusters, sela.sela.lamb, sela.sela.tol) == (
        "resnet18", 10, 1000, 25.0, 1e-4)
    assert (sela.train.epochs, sela.train.batch_size, sela.optim.name, sela.optim.lr) == (200, 512, "sgd", 0.01)
    assert (sela.frontend.n_fft, sela.frontend.hop_length, sela.data.segment_seconds) == (512, 320, 3.0)
    byol = load_config(RECIPES[0].with_name("fsd50k_byola.yaml"))
    pair = load_config(RECIPES[0].with_name("fsd50k_sela_audiontt.yaml"))
    assert (byol.train.objective, pair.train.objective) == ("byol", "sela")
    for part in ("frontend", "model", "augment", "data"):
        assert getattr(byol, part) == getattr(pair, part), part
    assert (byol.train.epochs, byol.train.batch_size) == (pair.train.epochs, pair.train.batch_size) == (100, 256)
    assert (byol.optim.name, byol.optim.lr, byol.byol.ema_decay, byol.augment.mixup_ratio) == ("adam", 3e-4, 0.99, 0.4)


def test_bad_override_names_the_key():
    with pytest.raises(ConfigError, match="sela.clusterz"):
        load_config(RECIPES[0], ["sela.clusterz=5"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(RECIPES[0], ["train.epochs=many"])


def test_cli_train_then_labels_on_the_synth_corpus(tmp_path: Path):
    from hear_sela.cli import main

    out = tmp_path / "run"
    overrides = [f"train.out_dir={out}", "data.synth.clips_per_class=2", "data.synth.clip_seconds=1.5",
                 "data.synth.classes=[tone_bright, noise_low, clicks_fast]", "data.segment_seconds=1.0",
                 "data.hop_seconds=0.5", "train.epochs=2", "train.batch_size=4", "sela.heads=2", "sela.clusters=4",
                 "sela.update_epochs=[0, 1]", "model.encoder_kwargs={d: 16, channels: 4}", "augment.crop_frames=48"]
    assert main(["train", "recipes/demo.yaml", *overrides]) == 0
    ckpt = out / "final.pt"
    stored = read_checkpoint(ckpt).label_store
    n = stored.labels.shape[1]
    assert main(["labels", str(ckpt), "--out", str(tmp_path / "stored.csv"), "--stored"]) == 0
    assert main(["labels", str(ckpt), "--out", str(tmp_path / "fresh.csv")]) == 0
    for name in ("stored.csv", "fresh.csv"):
        with open(tmp_path / name) as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == list(LABEL_COLUMNS)
        assert len(rows) == 2 * n
        assert {r["head"] for r in rows} == {"0", "1"}
        assert all(0 <= int(r["label"]) < 4 and 0 <= float(r["confidence"]) <= 1 for r in rows)
    with open(tmp_path / "stored.csv") as f:
        labels = [int(r["label"]) for r in csv.DictReader(f)]
    assert labels == stored.labels.reshape(-1).tolist()


def test_a_finished_run_extends_to_a_larger_epoch_count(tmp_path: Path, caplog):

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        over = {"sela.update_epochs": [0, 1]}
        train(cpu_config(tmp_path / "ref", **{**over, "train.epochs": 2}), cache=memory_cache())
        run = tmp_path / "run"
        train(cpu_config(run, **{**over, "train.epochs": 1}), cache=memory_cache())
        # final.pt leaves out the mixup memory (most of a real checkpoint); last.pt keeps it for the exact resume
        assert read_checkpoint(run / "final.pt").mixup_memory["memory"] is None
        assert read_checkpoint(run / "last.pt").mixup_memory["filled"] == 8
        with caplog.at_level("INFO", logger="hear_sela.train"):
            final = train(cpu_config(run, **{**over, "train.epochs": 2}), resume="auto", cache=memory_cache())
    finally:
        torch.set_num_threads(threads)
    assert "extending the run to train.epochs=2" in caplog.text
    a, b = read_checkpoint(tmp_path / "ref" / "final.pt"), read_checkpoint(final)
    assert (b.epoch, b.step, b.finished) == (2, 8, True)
    assert_same(a.data, b.data)  # 1 epoch, then extended to 2 = 2 epochs straight
    def untimed(out: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in records(out, "labels")]

    assert untimed(tmp_path / "ref") == untimed(run) and len(untimed(run)) == 2  # none dropped, none repeated
    assert [r["loss"] for r in records(tmp_path / "ref", "train")] == [r["loss"] for r in records(run, "train")]


def _kill_units(objective, dims: int) -> None:
    """Make the encoder's first `dims` output units dead: their last Linear rows and biases 0, then ReLU gives 0."""
    last = objective.encoder.fc[3]
    with torch.no_grad():
        last.weight[:dims] = 0
        last.bias[:dims] = -1.0  # ReLU(-1) = 0 for every input


@pytest.mark.parametrize("objective_name", ["sela", "byol"])
def test_dead_units_are_measured_in_training_and_the_label_update(tmp_path: Path, objective_name: str):
    import dataclasses

    from hear_sela.objectives.base import RunContext
    from hear_sela.training.state import build_objective

    cache = memory_cache()
    cfg = cpu_config(tmp_path, objective_name)
    cfg = dataclasses.replace(cfg, frontend=cache.frontend)
    objective = build_objective(cfg, len(cache), torch.device("cpu"))
    assert np.isnan(objective.dead_units())  # nothing seen yet
    _kill_units(objective, 8)  # of d = 32
    objective.train(False)  # no dropout: the count below sees the same outputs
    views = torch.randn(objective.views, 8, 1, 16, 16)
    objective.loss(torch.arange(8), views)
    with torch.no_grad():
        zero = torch.stack([(objective.encoder(v) == 0).all(0) for v in views]).all(0)  # (D,) over every view
    assert objective.dead_units() == pytest.approx(float(zero.float().mean())) and zero[:8].all()
    if objective_name == "sela":
        from hear_sela.embed import embed_segments

        stats = objective.update_labels(RunContext(cfg=cfg, device=torch.device("cpu"), features=cache.features))
        emb = embed_segments(objective.encoder, cache.features, cache.frontend, 8, torch.device("cpu"))  # (N, D)
        assert stats["dead_units"] == pytest.approx(float((emb == 0).all(0).float().mean()))
        assert stats["dead_units"] >= 8 / 32


def test_dead_units_are_logged_and_reported(tmp_path: Path):
    from hear_sela.analysis.core import dead_units_of

    train(cpu_config(tmp_path, **{"train.epochs": 1}), cache=memory_cache())
    for kind in ("train", "labels"):
        assert all(0 <= r["dead_units"] <= 1 for r in records(tmp_path, kind)) and records(tmp_path, kind)
    feats = np.abs(np.random.default_rng(0).normal(size=(10, 6)))
    feats[:, [1, 4]] = 0
    assert dead_units_of({"encoder": feats}) == {"encoder": pytest.approx(2 / 6)}


def test_resume_applies_or_refuses_each_changed_key_by_name(tmp_path: Path):
    """An edited recipe under --resume: the run length is applied (and stored); a key the resumed state depends on
    (optim.lr, the encoder's width, sela.clusters) is refused by name, before any training."""
    train(cpu_config(tmp_path, **{"train.epochs": 1}), cache=memory_cache())
    for key, value, named in (("optim.lr", 0.01, "optim.lr"), ("sela.clusters", 5, "sela.clusters"),
                              ("model.encoder_kwargs", {"d": 48, "channels": 4}, "model.encoder_kwargs.d")):
        with pytest.raises(ResumeError, match=rf"{named.replace('.', '[.]')} is .* in this checkpoint") as err:
            train(cpu_config(tmp_path, **{"train.epochs": 2, key: value}), resume="auto", cache=memory_cache())
        assert "\n" not in str(err.value)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # nothing ran
    # a checkpoint written before a config section existed: the section counts at its defaults, not as a change
    old = load_checkpoint(tmp_path / "last.pt")
    del old["config"]["online_eval"]
    save_checkpoint(tmp_path / "last.pt", old)
    final = train(cpu_config(tmp_path, **{"train.epochs": 2}), resume="auto", cache=memory_cache())
    stored = load_checkpoint(final)
    assert stored["epoch"] == 2 and stored["config"]["train"]["epochs"] == 2
    assert stored["config"]["optim"]["lr"] == 0.05


def test_a_second_training_into_a_busy_folder_is_refused(tmp_path: Path):
    """Another process training into train.out_dir (it holds the folder's lock): refused in one line, nothing of
    the other run touched; once it ends, the folder is free again."""
    import subprocess

    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                               f"f = open({str(tmp_path / '.train.lock')!r}, 'a'); fcntl.lockf(f, fcntl.LOCK_EX)\n"
                               "print('locked', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "metrics.jsonl").write_text("the other run's\n")
        with pytest.raises(ResumeError, match="in use by another training") as err:
            train(cpu_config(tmp_path, **{"train.epochs": 1}), cache=memory_cache())
        assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
        assert (tmp_path / "metrics.jsonl").read_text() == "the other run's\n"
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "metrics.jsonl").unlink()
    assert train(cpu_config(tmp_path, **{"train.epochs": 1}), cache=memory_cache()).is_file()


def test_a_killed_writes_leftover_is_removed_on_start(tmp_path: Path, caplog):
    """A checkpoint write killed mid-way leaves atomic_write's hidden temporary; the next training there removes it
    (and nothing else that starts with a dot)."""
    import logging

    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".last.pt.k3x_9QzA.tmp"
    leftover.write_bytes(b"\0" * 4096)
    mine = tmp_path / ".notes.tmp"
    mine.write_text("not ours")
    with caplog.at_level(logging.INFO):
        train(cpu_config(tmp_path, **{"train.epochs": 1}), cache=memory_cache())
    assert not leftover.exists() and mine.exists()
    assert "left by a write that was interrupted" in caplog.text


def test_more_clusters_than_segments_is_warned(tmp_path: Path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        train(cpu_config(tmp_path, **{"train.epochs": 1, "sela.clusters": 50}), cache=memory_cache())
    assert "sela.clusters=50 exceeds the 37 training segments" in caplog.text
