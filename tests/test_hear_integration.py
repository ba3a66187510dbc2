"""heareval end to end on CPU, exactly as heareval documents it, on the three generated synth tasks.

    python -m heareval.embeddings.runner hear_sela --tasks-dir T --embeddings-dir E
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 python -m heareval.predictions.runner E/hear_sela/* --grid fast
        --grid-points 1 --gpus null

with the embedded default weights. Margins over chance (stated in docs/hear.md, "Tests and what they show"):
top-1 > 1/classes + 0.25; mAP > mean label prevalence + 0.15 (a random ranking's expected AP is the prevalence);
onset F-measure > 0.2 (an all-empty prediction scores 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hear_sela.data.synth_tasks import write_hear_tasks

MARGIN_TOP1 = 0.25
MARGIN_MAP = 0.15
MIN_ONSET_F = 0.2


def _run(cmd: list[str], cwd: Path, **env: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def _prevalence(task_dir: Path) -> float:
    """Mean over classes of the share of test clips carrying that class: a random ranking's expected mAP."""
    labels = json.loads((task_dir / "test.json").read_text())
    vocab = [line.split(",", 1)[1] for line in (task_dir / "labelvocabulary.csv").read_text().split()[1:]]
    return sum(sum(c in clip for clip in labels.values()) / len(labels) for c in vocab) / len(vocab)


@pytest.mark.integration
def test_heareval_runners_on_synth_tasks(tmp_path):
    pytest.importorskip("heareval")
    tasks = write_hear_tasks(tmp_path / "tasks", seed=0, size=60)
    emb = tmp_path / "embeddings"
    _run([sys.executable, "-m", "heareval.embeddings.runner", "hear_sela", "--tasks-dir", str(tmp_path / "tasks"),
          "--embeddings-dir", str(emb)], cwd=tmp_path)
    task_dirs = sorted(str(p) for p in (emb / "hear_sela").iterdir())
    assert [Path(p).name for p in task_dirs] == sorted(t.name for t in tasks)
    _run([sys.executable, "-m", "heareval.predictions.runner", *task_dirs, "--grid", "fast", "--grid-points", "1",
          "--gpus", "null"], cwd=tmp_path, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")

    scores = {Path(p).name: json.loads((Path(p) / "test.predicted-scores.json").read_text())["test"]
              for p in task_dirs}
    print(json.dumps(scores, indent=1))
    n_classes = len((tmp_path / "tasks/synth_scene_multiclass/labelvocabulary.csv").read_text().split()) - 1
    assert scores["synth_scene_multiclass"]["test_top1_acc"] > 1 / n_classes + MARGIN_TOP1
    prevalence = _prevalence(tmp_path / "tasks/synth_scene_multilabel")
    assert scores["synth_scene_multilabel"]["test_mAP"] > prevalence + MARGIN_MAP
    assert scores["synth_events"]["test_event_onset_200ms_fms"] > MIN_ONSET_F
    assert 0.0 <= scores["synth_events"]["test_segment_1s_er"] < 1.0
