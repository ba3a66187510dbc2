"""hear-sela evaluate: resume, failure isolation and table contents, with an injected runner that imitates
heareval's outputs (file names and score schema as heareval 2021.1.3 writes them)."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hear_sela.data.task_layout import write_task
from hear_sela.evaluation.runner import WEIGHTS_ONLY_ENV, CommandResult, EvalOptions, evaluate_modules
from hear_sela.evaluation.specs import ModuleSpec, parse_module_spec, resolve_specs, with_model_options
from hear_sela.evaluation.tables import DIFF_COLUMN, read_task_score

TASKS = {"task_a": ("top1_acc", False), "task_b": ("mAP", True)}  # name -> (metric, k-fold)


def _write_tasks(root: Path) -> Path:
    """Two small valid tasks in HEAR's layout (evaluate runs validate_task on each before heareval sees it)."""
    for name, (metric, kfold) in TASKS.items():
        splits = {"fold00": 2, "fold01": 3} if kfold else {"train": 4, "valid": 1, "test": 3}  # split -> clips
        meta = {"task_name": name, "embedding_type": "scene", "prediction_type": "multiclass",
                "split_mode": "new_split_kfold" if kfold else "trainvaltest", "splits": list(splits),
                "sample_duration": 0.1, "evaluation": [metric]}
        bounds = np.cumsum([0, *splits.values()])
        n = int(bounds[-1])
        write_task(root / name, meta, ["x"], [np.zeros(1600)] * n, [["x"]] * n,
                   {s: list(range(bounds[k], bounds[k + 1])) for k, s in enumerate(splits)})
    return root


def _scores(task: str, score: float) -> dict:
    """heareval's test.predicted-scores.json for a trainvaltest task, or a two-fold one."""
    metric, kfold = TASKS[task]
    fold = {"test_loss": 0.5, "test_score": score, f"test_{metric}": score, "validation_score": score,
            "epoch": 3, "time_in_min": 0.1}
    common = {"hparams": {"lr": 0.001}, "postprocessing": [], "score_mode": "max", "embedding_path": "x"}
    if not kfold:
        return {"test": fold, **common}
    f0, f1 = dict(fold, test_score=score - 0.1), dict(fold, test_score=score + 0.1)
    return {"fold00": f0, "fold01": f1, "aggregated_scores": {"test_score_mean": score, "test_score_std": 0.14},
            **common}


class FakeHeareval:
    """Writes what heareval's runners would; `fail` = {(module_dir_alias, task, stage)} returns exit 1."""

    def __init__(self, scores: dict, fail: set | None = None):
        self.scores, self.fail, self.calls = scores, fail or set(), []

    def __call__(self, cmd, env, cwd, log_path):
        stage = "embeddings" if "heareval.embeddings.runner" in cmd else "predictions"
        self.calls.append((stage, cmd, env))
        if stage == "embeddings":
            emb_root, task = Path(cmd[cmd.index("--embeddings-dir") + 1]), cmd[cmd.index("--task") + 1]
            tasks_dir = Path(cmd[cmd.index("--tasks-dir") + 1])
            for name in sorted(p.name for p in tasks_dir.iterdir()) if task == "all" else [task]:
                if (emb_root.name, name, stage) in self.fail:  # heareval stops at the first exception
                    return CommandResult(1, "Traceback ...\nRuntimeError: deliberate failure")
                out = emb_root / cmd[3] / name
                out.mkdir(parents=True)
                (out / "task_metadata.json").write_text((tasks_dir / name / "task_metadata.json").read_text())
                (out / ".done.embeddings").touch()
        else:
            for task_dir in map(Path, cmd[3:cmd.index("--grid")]):
                alias, task = task_dir.parent.parent.name, task_dir.name
                if (alias, task, stage) in self.fail:
                    return CommandResult(1, "ValueError: deliberate failure")
                scores = _scores(task, self.scores[alias, task])
                ckpts = task_dir / "lightning_logs" / "version_0" / "checkpoints"  # where heareval's probes go
                ckpts.mkdir(parents=True)
                (ckpts / "epoch=3-step=8.ckpt").write_bytes(b"probe weights")
                (ckpts.parent / "metrics.csv").write_text("epoch,val_loss\n3,0.5\n")
                (task_dir / "test.predicted-scores.json").write_text(json.dumps(scores))
                (task_dir / "prediction-done.json").write_text("{}")
        return CommandResult(0, "")


@pytest.fixture
def setup(tmp_path):
    tasks = _write_tasks(tmp_path / "tasks")
    specs = [parse_module_spec("sela=hear_sela"), parse_module_spec("byola=some.hear_module")]
    scores = {("sela", "task_a"): 0.8, ("sela", "task_b"): 0.6, ("byola", "task_a"): 0.7, ("byola", "task_b"): 0.65}
    return tasks, specs, scores, tmp_path / "out"


def test_runs_then_resumes_without_work(setup):
    tasks, specs, scores, out = setup
    fake = FakeHeareval(scores)
    opts = EvalOptions(grid="fast", runner="heareval")
    table = evaluate_modules(tasks, specs, out, opts, runner=fake)
    assert [c[0] for c in fake.calls] == ["embeddings", "predictions"] * 4
    emb = [c[1] for c in fake.calls if c[0] == "embeddings"]
    assert emb[0][1:4] == ["-m", "heareval.embeddings.runner", "hear_sela"]
    assert emb[0][emb[0].index("--task") + 1] == "task_a"
    # separate embeddings roots per module, so two checkpoints of one module never share a folder
    roots = {c[c.index("--embeddings-dir") + 1] for c in emb}
    assert roots == {str(out.resolve() / "embeddings" / "sela"), str(out.resolve() / "embeddings" / "byola")}
    pred = [c for c in fake.calls if c[0] == "predictions"]
    assert all(c[2][WEIGHTS_ONLY_ENV] == "1" for c in pred)
    assert all(c[1][1:3] == ["-m", "heareval.predictions.runner"] and c[1][4:6] == ["--grid", "fast"] for c in pred)
    assert all(WEIGHTS_ONLY_ENV not in c[2] or c[0] == "predictions" for c in fake.calls if c[0] == "embeddings")
    again = FakeHeareval(scores)
    table2 = evaluate_modules(tasks, specs, out, opts, runner=again)
    assert again.calls == []
    pd.testing.assert_frame_equal(table, table2)


def test_table_contents(setup):
    tasks, specs, scores, out = setup
    table = evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=FakeHeareval(scores))
    t = table.set_index("task")
    assert t.loc["task_a", "metric"] == "top1_acc" and t.loc["task_b", "metric"] == "mAP"
    assert t.loc["task_a", "sela"] == pytest.approx(0.8)
    assert t.loc["task_b", "byola"] == pytest.approx(0.65)  # k-fold: aggregated_scores.test_score_mean
    assert t.loc["mean", "sela"] == pytest.approx(0.7) and t.loc["mean", "byola"] == pytest.approx(0.675)
    assert t[DIFF_COLUMN].to_numpy() == pytest.approx([0.1, -0.05, 0.025])
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv.columns) == ["task", "metric", "test clips", "sela", "byola", DIFF_COLUMN]
    assert list(t["test clips"]) == ["3", "5 (2 folds)", ""]  # test split only; every fold of a k-fold task
    md = (out / "comparison.md").read_text()
    assert "| task_a | top1_acc | 3 | 0.800 | 0.700 | 0.100 |" in md
    assert (out / "comparison.png").stat().st_size > 1000


@pytest.mark.parametrize("keep", [False, True])
def test_probe_checkpoints_are_removed_once_scored_unless_kept(setup, keep):
    tasks, specs, scores, out = setup
    evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval", keep_probe_checkpoints=keep),
                     runner=FakeHeareval(scores))
    logs = sorted(out.glob("embeddings/*/*/*/lightning_logs/version_0"))
    assert len(logs) == 4  # 2 modules x 2 tasks
    assert all((d / "metrics.csv").is_file() for d in logs)  # the probes' training logs stay
    assert all((d / "checkpoints" / "epoch=3-step=8.ckpt").is_file() == keep for d in logs)


def test_failure_is_isolated_and_retried(setup):
    tasks, specs, scores, out = setup
    fake = FakeHeareval(scores, fail={("byola", "task_a", "embeddings"), ("sela", "task_b", "predictions")})
    table = evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=fake)
    t = table.set_index("task")
    assert np.isnan(t.loc["task_a", "byola"]) and np.isnan(t.loc["task_b", "sela"])
    assert t.loc["task_a", "sela"] == pytest.approx(0.8) and t.loc["task_b", "byola"] == pytest.approx(0.65)
    assert np.isnan(t.loc["mean", "sela"])  # no mean over an incomplete column
    md = (out / "comparison.md").read_text()
    assert "`byola` / `task_a`: embeddings failed" in md and "RuntimeError: deliberate failure" in md
    assert "`sela` / `task_b`: predictions failed" in md
    # the next run redoes only what failed: byola/task_a (both stages) and sela/task_b's predictions
    retry = FakeHeareval(scores)
    table = evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=retry)
    assert sorted(c[0] for c in retry.calls) == ["embeddings", "predictions", "predictions"]
    assert table.drop(columns=["task", "metric"]).notna().all().all()


def test_changed_checkpoint_recomputes(setup, tmp_path):
    tasks, _, scores, out = setup
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"one")
    specs = [parse_module_spec(f"sela=some.module:{ckpt}")]
    fake = FakeHeareval({("sela", t): 0.5 for t in TASKS})
    evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=fake)
    emb = [c[1] for c in fake.calls if c[0] == "embeddings"]
    assert emb[0][emb[0].index("--model") + 1] == str(ckpt.resolve())
    ckpt.write_bytes(b"two, longer")
    again = FakeHeareval({("sela", t): 0.5 for t in TASKS})
    evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=again)
    assert len(again.calls) == 4


def test_model_options_reach_heareval_and_a_change_recomputes(setup):
    tasks, _, _, out = setup
    fake = FakeHeareval({(a, t): 0.5 for a in ("win", "fr") for t in TASKS})
    specs = with_model_options([parse_module_spec("win=some.module"), parse_module_spec("fr=some.module")],
                               ['win={"timestamp_mode": "windows", "hop_ms": 25}'])
    evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval"), runner=fake)
    emb = {Path(c[c.index("--embeddings-dir") + 1]).name: c for stage, c, _ in fake.calls if stage == "embeddings"}
    assert emb["win"][emb["win"].index("--model-options") + 1] == '{"hop_ms":25,"timestamp_mode":"windows"}'
    assert "--model-options" not in emb["fr"]
    again = FakeHeareval(fake.scores)
    changed = with_model_options(specs, ['win={"timestamp_mode": "frames"}'])
    evaluate_modules(tasks, changed, out, EvalOptions(runner="heareval"), runner=again)
    assert sorted({Path(c[c.index("--embeddings-dir") + 1]).name for st, c, _ in again.calls if st == "embeddings"}) \
        == ["win"]  # only the module whose options changed is redone
    with pytest.raises(ValueError, match="no --module of that alias"):
        with_model_options(specs, ['nope={"a": 1}'])
    with pytest.raises(ValueError, match="a JSON object"):
        with_model_options(specs, ["win=[1]"])


def test_specs_and_aliases(tmp_path):
    a, b = tmp_path / "sela" / "export.safetensors", tmp_path / "byol" / "export.safetensors"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"x")
    s = parse_module_spec(f"hear_sela.hear:{a}")
    assert (s.module, s.checkpoint, s.alias) == ("hear_sela.hear", str(a), "")
    specs = resolve_specs([parse_module_spec(f"other.mod:{a}"), parse_module_spec(f"other.mod:{b}")])
    assert [x.alias for x in specs] == ["other.mod:sela/export", "other.mod:byol/export"]
    assert [x.objective for x in specs] == ["sela", "byol"]  # from the names, as the module is not ours
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        parse_module_spec("hear_sela:missing.pt")
    with pytest.raises(ValueError, match="not an importable"):
        parse_module_spec("not-a-module")
    with pytest.raises(ValueError, match="not distinguishable"):
        resolve_specs([ModuleSpec("", "m"), ModuleSpec("", "m")])


def test_read_task_score_schema(tmp_path):
    (tmp_path / "test.predicted-scores.json").write_text(json.dumps(_scores("task_b", 0.4)))
    (tmp_path / "task_metadata.json").write_text(json.dumps({"evaluation": ["mAP", "d_prime"]}))
    assert read_task_score(tmp_path) == (pytest.approx(0.4), "mAP", "max")
    (tmp_path / "test.predicted-scores.json").write_text(json.dumps({"hparams": {}}))
    with pytest.raises(KeyError, match="aggregated_scores"):
        read_task_score(tmp_path)


def test_batched_calls_fall_back_to_single_tasks(setup):
    tasks, specs, scores, out = setup
    fake = FakeHeareval(scores, fail={("byola", "task_a", "embeddings")})
    table = evaluate_modules(tasks, specs, out, EvalOptions(runner="heareval", batch=True), runner=fake)

    def kind(cmd):
        batched = cmd[cmd.index("--task") + 1] == "all" if "--task" in cmd else cmd.index("--grid") > 4
        return "all" if batched else "one"

    stages = [(c[0], kind(c[1])) for c in fake.calls]
    # sela: one call per stage for both tasks; byola: the batched embeddings call fails at task_a, then task by task
    assert stages == [("embeddings", "all"), ("predictions", "all"),
                      ("embeddings", "all"), ("embeddings", "one"), ("embeddings", "one"), ("predictions", "one")]
    t = table.set_index("task")
    assert np.isnan(t.loc["task_a", "byola"]) and t.loc["task_b", "byola"] == pytest.approx(0.65)
    assert t.loc["mean", "sela"] == pytest.approx(0.7)


def test_every_module_is_checked_before_any_work(tmp_path, monkeypatch, caplog):
    """A module that does not import (the README's old `--module hearbaseline` example) fails in seconds with one
    line naming it, before heareval runs anything; so does one without load_model or with a broken dependency."""
    from hear_sela.cli import main as cli
    from hear_sela.commands import evaluate as command
    from hear_sela.evaluation.specs import check_importable

    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "good_hear_mod.py").write_text("def load_model(model_file_path=''):\n    return None\n")
    (mods / "broken_hear_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mods), os.environ.get("PYTHONPATH", "")]))
    check_importable(["good_hear_mod", "good_hear_mod"])
    with pytest.raises(ValueError) as e:
        check_importable(["good_hear_mod", "no_such_hear_mod", "broken_hear_mod", "json"])
    msg = str(e.value)
    assert "good_hear_mod" not in msg and "\n" not in msg
    assert "no_such_hear_mod (ModuleNotFoundError: No module named 'no_such_hear_mod')" in msg
    assert "broken_hear_mod (ModuleNotFoundError: No module named 'no_such_dependency_xyz')" in msg
    assert "json (no load_model: not a HEAR module)" in msg

    def no_work(*args, **kwargs):
        raise AssertionError("evaluation started before the modules were checked")

    monkeypatch.setattr(command, "evaluate_modules", no_work)
    with caplog.at_level("ERROR"):
        assert cli(["evaluate", "--tasks-dir", str(tmp_path), "--out", str(tmp_path / "out"),
                    "--module", "good_hear_mod", "--module", "hearbaseline"]) == 1
    assert "hearbaseline (ModuleNotFoundError" in caplog.text


def test_invalid_task_folders_are_skipped_by_name_before_heareval(setup, caplog):
    """A folder without task_metadata.json and a task whose WAVs do not match its metadata never reach heareval;
    each is named with its reason."""
    tasks, specs, scores, out = setup
    (tasks / "notes").mkdir()
    import shutil

    shutil.copytree(tasks / "task_a", tasks / "task_c")
    meta = json.loads((tasks / "task_c" / "task_metadata.json").read_text())
    (tasks / "task_c" / "task_metadata.json").write_text(json.dumps({**meta, "sample_duration": 0.5}))
    fake = FakeHeareval(scores)
    table = evaluate_modules(tasks, specs[:1], out, EvalOptions(grid="fast", runner="heareval"), runner=fake)
    assert list(table["task"])[:2] == ["task_a", "task_b"] and "task_c" not in list(table["task"])
    seen = {c[1][c[1].index("--task") + 1] for c in fake.calls if c[0] == "embeddings"}
    assert seen == {"task_a", "task_b"}
    assert "skipping" in caplog.text and "notes" in caplog.text and "no task_metadata.json" in caplog.text
    assert "task_c" in caplog.text and "want 16000 Hz mono, 8000 samples" in caplog.text


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_evaluate_on_a_missing_or_empty_tasks_folder_is_one_line(tmp_path, capsys, state):
    from hear_sela.cli import main

    tasks = tmp_path / "tasks"
    if state == "empty":
        tasks.mkdir()
    assert main(["evaluate", "--tasks-dir", str(tasks), "--module", "x=hear_sela", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tasks) in err[0], err
    assert ("tasks folder not found" if state == "missing" else "(it is empty)") in err[0]
