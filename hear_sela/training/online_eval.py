"""Online evaluation: frozen-encoder probes on dev tasks while training runs, as solo-learn and lightly do for images.

At step 0 (the untrained init), every `online_eval.every_steps` steps and after the last step, rank 0 embeds a fixed
set of dev clips with the HEAR module's own scene embedding (`hear.get_scene_embeddings` over the training encoder,
the run's frontend and its normalisation statistics: exactly what an export of the weights at that step gives) and
scores two probes per task with the task's own folds: kNN (cosine) and logistic regression on standardised
embeddings (scikit-learn). The records go to the run's logger (`metrics.jsonl` and TensorBoard, kind "eval").

The evaluation changes nothing in the run: the encoder is restored to its mode, no batch-norm statistic moves (eval
mode), and the RNG states of Python, numpy and torch are restored afterwards (importing scikit-learn draws from
Python's RNG), so a run with online evaluation trains bitwise like one without, and resume stays exact.

Legend: N clips, S samples, D embedding dimension.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hear_sela import distributed as dist
from hear_sela.checkpoint import EncoderBundle, export_encoder_weights
from hear_sela.config import Config, ConfigError, OnlineEvalConfig
from hear_sela.data.hear_task_read import SceneTaskClips, is_scene_multiclass, read_scene_task

log = logging.getLogger("hear_sela.online_eval")

EMBED_BATCH = 64  # clips per get_scene_embeddings call (memory only)


def dev_task_dirs(cfg: OnlineEvalConfig) -> list[Path]:
    """The task folders `cfg` names (or every multiclass scene task in tasks_dir). ConfigError when none."""
    root = Path(cfg.tasks_dir)
    if not root.is_dir():
        raise ConfigError(f"online_eval.tasks_dir={cfg.tasks_dir!r} is not a folder")
    if cfg.tasks:
        dirs = [root / t for t in cfg.tasks]
        bad = [d.name for d in dirs if not is_scene_multiclass(d)]
        if bad:
            raise ConfigError(f"online_eval.tasks: {bad} are not multiclass scene tasks under {root}")
        return dirs
    dirs = sorted(d for d in root.iterdir() if is_scene_multiclass(d))
    if not dirs:
        raise ConfigError(f"online_eval.tasks_dir={cfg.tasks_dir!r} holds no multiclass scene task")
    return dirs


def probe_task(emb: np.ndarray, task: SceneTaskClips, probes: list[str], knn_k: int = 10,
               logreg_c: float = 1.0) -> dict[str, float]:
    """Test accuracy of each probe on embeddings emb (N, D) of the task's clips, averaged over its folds (each fold
    held out in turn, or train + valid against test). A pure function of its inputs."""
    folds = probe_task_folds(emb, task, probes, knn_k, logreg_c)
    return {p: float(np.mean(v)) if v else float("nan") for p, v in folds.items()}


def probe_task_folds(emb: np.ndarray, task: SceneTaskClips, probes: list[str], knn_k: int = 10,
                     logreg_c: float = 1.0) -> dict[str, list[float]]:
    """probe_task's accuracy on each held-out fold apart (their spread is the task's own noise)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    scores: dict[str, list[float]] = {p: [] for p in probes}
    for train, test in task.folds():
        if not test.any() or len(np.unique(task.labels[train])) < 2:
            continue  # (a subset can leave a fold empty)
        y_train, y_test = task.labels[train], task.labels[test]
        if "knn" in probes:
            knn = KNeighborsClassifier(n_neighbors=min(knn_k, int(train.sum())), metric="cosine")
            scores["knn"].append(float((knn.fit(emb[train], y_train).predict(emb[test]) == y_test).mean()))
        if "logreg" in probes:
            scaler = StandardScaler().fit(emb[train])
            clf = LogisticRegression(C=logreg_c, max_iter=1000)
            clf.fit(scaler.transform(emb[train]), y_train)
            scores["logreg"].append(float((clf.predict(scaler.transform(emb[test])) == y_test).mean()))
    return scores


def scene_embeddings(model: nn.Module, audio: np.ndarray, batch: int = EMBED_BATCH,
                     embed: Callable[[torch.Tensor, nn.Module], torch.Tensor] | None = None) -> np.ndarray:
    """The HEAR scene embedding of clips (N, S) -> (N, D) float32 numpy, `batch` clips at a time; `embed` is a HEAR
    module's get_scene_embeddings (default: ours)."""
    if embed is None:
        from hear_sela.hear import get_scene_embeddings as embed

    device = next(itertools.chain(model.parameters(), model.buffers())).device
    parts = [embed(torch.from_numpy(audio[i:i + batch]).to(device), model).cpu()
             for i in range(0, len(audio), batch)]
    return torch.cat(parts).numpy()


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Leave Python's, numpy's and torch's (CPU and CUDA) global RNG states as they were."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def snapshot_path(out_dir: Path, step: int) -> Path:
    """Where `online_eval.keep_exports` writes the encoder evaluated at `step`."""
    return out_dir / "steps" / f"step{step:07d}.pt"


def hear_model(encoder: nn.Module, cfg: Config, objective: str) -> nn.Module:
    """The HEAR module over the training encoder (shared, not copied) with the run's frontend."""
    from hear_sela.hear import HearOptions, HearSelaModel

    mode = encoder.training
    # eval mode first: HearSelaModel probes the encoder's receptive field with NaN inputs, which a batch-norm layer
    # in training mode would write into its running statistics
    encoder.eval()
    try:
        return HearSelaModel(EncoderBundle(encoder, cfg, "online evaluation", objective), HearOptions())
    finally:
        encoder.train(mode)


class OnlineEvaluator:
    """Runs the probes when due; its state (the last step evaluated) travels in the checkpoint, so a resumed run
    neither repeats nor skips a point of the curve."""

    def __init__(self, cfg: Config, objective: str):
        self.cfg = cfg.online_eval
        self.enabled = bool(self.cfg.tasks_dir)
        self.objective = objective
        self.last_step = -1
        self._tasks: list[SceneTaskClips] | None = None
        self._model: nn.Module | None = None
        if self.enabled:
            if self.cfg.every_steps < 0 or self.cfg.max_clips < 0 or self.cfg.knn_k < 1 or self.cfg.logreg_c <= 0:
                raise ConfigError(f"online_eval: need every_steps >= 0, max_clips >= 0, knn_k >= 1, logreg_c > 0; got "
                                  f"{self.cfg.every_steps}, {self.cfg.max_clips}, {self.cfg.knn_k}, "
                                  f"{self.cfg.logreg_c}")
            self.task_dirs = dev_task_dirs(self.cfg)  # checked on every rank, before any training

    def due(self, step: int, final: bool = False) -> bool:
        if not self.enabled or step <= self.last_step:
            return False
        return final or step == 0 or (self.cfg.every_steps > 0 and step % self.cfg.every_steps == 0)

    def tasks(self) -> list[SceneTaskClips]:
        if self._tasks is None:
            t0 = time.perf_counter()
            self._tasks = [read_scene_task(d, self.cfg.max_clips, seed=0) for d in self.task_dirs]
            log.info("online evaluation: %d dev task(s), %d clips, read in %.1f s", len(self._tasks),
                     sum(len(t.labels) for t in self._tasks), time.perf_counter() - t0)
        return self._tasks

    def maybe_run(self, encoder: nn.Module, run_cfg: Config, step: int, write: Callable[[str, int, dict], None],
                  cpu_seconds: float, final: bool = False) -> dict[str, float] | None:
        """Evaluate at `step` when due (rank 0 only; the others go on and meet it at the next collective). Returns
        the logged record, or None."""
        if not self.due(step, final):
            return None
        self.last_step = step
        if not dist.is_main():
            return None
        record = self.evaluate(encoder, run_cfg)
        record["cpu_seconds"] = cpu_seconds  # the run's CPU time before this evaluation
        if self.cfg.keep_exports:  # the weights behind each point of the curve, for a later look at any of them
            export_encoder_weights(run_cfg, encoder, snapshot_path(Path(run_cfg.train.out_dir), step))
        write("eval", step, record)
        log.info("online evaluation at step %d: mean kNN %.3f, logreg %.3f (%.1f s)", step,
                 record.get("mean/knn", float("nan")), record.get("mean/logreg", float("nan")), record["seconds"])
        return record

    def evaluate(self, encoder: nn.Module, run_cfg: Config) -> dict[str, float]:
        """Scores of every task and probe, their means over tasks, and the seconds it took."""
        t0, c0 = time.perf_counter(), time.process_time()
        mode = encoder.training
        with rng_preserved():
            if self._model is None:
                self._model = hear_model(encoder, run_cfg, self.objective)
            encoder.eval()
            try:
                record: dict[str, float] = {}
                for task in self.tasks():
                    scores = probe_task(scene_embeddings(self._model, task.audio), task, list(self.cfg.probes),
                                        self.cfg.knn_k, self.cfg.logreg_c)
                    record.update({f"{task.name}/{p}": v for p, v in scores.items()})
                for p in self.cfg.probes:
                    record[f"mean/{p}"] = float(np.mean([record[f"{t.name}/{p}"] for t in self.tasks()]))
            finally:
                encoder.train(mode)
        record["seconds"] = time.perf_counter() - t0
        record["eval_cpu_seconds"] = time.process_time() - c0
        return record

    def state_dict(self) -> dict[str, int]:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict[str, int] | None) -> None:
        self.last_step = int((state or {}).get("last_step", -1))
