"""`hear-sela demo`: stage bookkeeping (fast), and the whole --quick run end to end (slow: minutes)."""

import argparse
import json

import pytest

from hear_sela.commands import demo


def test_state_records_and_refuses_other_settings(tmp_path):
    state = demo.DemoState(tmp_path, {"quick": True})
    assert not state.done("data")
    state.finish("data", 1.23, clips=10)
    again = demo.DemoState(tmp_path, {"quick": True})
    assert again.done("data") and again.get("data") == {"seconds": 1.2, "clips": 10}
    with pytest.raises(SystemExit, match="other settings"):
        demo.DemoState(tmp_path, {"quick": False})


def test_shared_overrides_keep_both_runs_on_one_corpus(tmp_path):
    args = argparse.Namespace(quick=True, set=["train.seed=3"])
    ov = demo._overrides(tmp_path, args)
    assert ov[:2] == [f"data.root={tmp_path / 'corpus'}", f"data.cache_dir={tmp_path / 'cache'}"]
    assert ov[-1] == "train.seed=3" and all(q in ov for q in demo.QUICK_OVERRIDES)
    assert demo.default_recipe().name == "demo.yaml"


def test_clustering_summary_shows_the_mean_over_heads_beside_the_best():
    def row(method, nmi, k=4, ref="labels"):
        return {"method": method, "reference": ref, "k_used": k, "nmi": nmi, "ami": nmi / 2, "ari": 0.1,
                "purity": 0.5}

    metrics = [row("SeLa head 0", 0.1), row("SeLa head 1", 0.8, k=3), row("SeLa head 2", 0.3),
               row("k-means: x", 0.5), row("random (head 1 permuted)", 0.0), row("SeLa head 1", 0.9, ref="other")]
    t = demo.clustering_summary({"report_head": 1, "primary_metric": "nmi", "metrics": metrics}).set_index("method")
    assert list(t.index) == ["SeLa head 1 (best by nmi)", "SeLa heads 0-2: mean", "k-means: x",
                             "random (head 1 permuted)"]
    assert t.loc["SeLa head 1 (best by nmi)", "nmi"] == 0.8  # the 'labels' reference only
    assert t.loc["SeLa heads 0-2: mean", "nmi"] == pytest.approx(0.4)
    assert t.loc["SeLa heads 0-2: mean", "k_used"] == 4  # (4 + 3 + 4) / 3 rounded


def test_printed_summary_counts_test_clips_as_counts(tmp_path, capsys):
    from hear_sela.evaluation.tables import CLIPS_COLUMN

    metrics = [{"method": m, "reference": "labels", "k_used": 4, "nmi": 0.5, "ami": 0.2, "ari": 0.1, "purity": 0.5}
               for m in ("SeLa head 0", "k-means: x")]
    (tmp_path / "summary.json").write_text(json.dumps({"report_head": 0, "primary_metric": "nmi",
                                                       "metrics": metrics}))
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "comparison.csv").write_text(
        f"task,metric,{CLIPS_COLUMN},sela\nt,top1_acc,12,0.75\nmean,(mean over tasks),,0.75\n")
    demo.print_summary(tmp_path, {"summary": str(tmp_path / "summary.json"), "report": "r", "heatmap": "h", "map": "m"},
                       {"comparison": "c"}, 60.0)
    printed = capsys.readouterr().out
    assert "| t | top1_acc | 12 | 0.750 |" in printed and "| mean | (mean over tasks) |  | 0.750 |" in printed
    import torch

    fp = demo.numerics_fingerprint()  # what the numbers repeat on, said with them
    assert fp["isa"] == torch.backends.cpu.get_cpu_capability() and fp["cpu"]
    assert f"on the same CPU kind, torch and threads ({fp['cpu']}, {fp['isa']}, torch {fp['torch']}" in printed


def test_thread_count_is_pinned_for_this_process_and_its_subprocesses(monkeypatch):
    import subprocess
    import sys

    import torch

    for name in demo.THREAD_VARIABLES:
        monkeypatch.setenv(name, "7")  # what a user's shell might say
    before = torch.get_num_threads()
    try:
        demo.pin_threads(1)
        assert torch.get_num_threads() == 1
        child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                               capture_output=True, text=True, check=True)
        assert child.stdout.strip() == "1"  # a training or heareval subprocess
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="--threads"):
        demo.pin_threads(0)


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys, monkeypatch):
    import torch

    from hear_sela import runtime
    from hear_sela.cli import main as cli

    # the CLI pins threads and the allocator for itself and its subprocesses: undone after the test, so later
    # tests' subprocesses do not inherit them (an MKL_NUM_THREADS=2 broke test_train_resume's bitwise check)
    for name in (*demo.THREAD_VARIABLES, *runtime.MALLOC_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    try:
        _quick_demo(tmp_path, capsys, cli)
    finally:
        torch.set_num_threads(threads)


def _quick_demo(tmp_path, capsys, cli) -> None:
    out = tmp_path / "demo"
    assert cli(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "SeLa's emergent classes vs the generating classes" in printed and "SeLa - BYOL-A" in printed
    state = json.loads((out / "demo_state.json").read_text())
    assert list(state["stages"]) == list(demo.STAGES)
    assert (out / "analysis" / "heatmap.png").is_file() and (out / "evaluation" / "comparison.csv").is_file()
    # a rerun skips every stage
    assert cli(["demo", "--out", str(out), "--quick"]) == 0
    assert json.loads((out / "demo_state.json").read_text()) == state


def test_readme_gives_the_demo_one_time_with_machine_and_load():
    """The demo section once read 9.7, 6.0 and 6.5 min for one command: one measured figure, with where and under
    what load it was measured."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert re.findall(r"`make demo` takes (\d+(?:\.\d+)? min)", readme) == ["6.0 min"]
    results = (root / "docs" / "results" / "demo.md").read_text()
    start = results.index("## Timing")
    section = results[start:results.index("\n## ", start + 1)]
    times = re.findall(r"\d+(?:\.\d+)? min(?:utes)?\b", section)
    assert times == ["6.0 min"], times
    line = section[section.index("6.0 min"):].split("\n\n")[0]
    assert "2-core CPU" in line and "idle" in line and "commit" in line


def _tensors(obj, prefix: str = ""):
    """(dotted name, tensor) of every tensor in a checkpoint's nested dicts and lists."""
    import torch

    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        if torch.is_tensor(value):
            yield f"{prefix}{key}", value
        else:
            yield from _tensors(value, f"{prefix}{key}.")


def _run_beside(cmd: list[str], hog: bool, **kw):
    """Run `cmd` (threads pinned to 2 as the demo pins them), with a busy-loop process beside it when `hog`."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **{name: "2" for name in demo.THREAD_VARIABLES}}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, **kw)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def test_demo_training_repeats_bitwise_beside_a_cpu_hog(tmp_path):
    """A loaded machine must not change the demo's training. A --quick-sized demo training (recipe demo,
    threads pinned), run alone and then beside a busy-loop process, gives bitwise-equal weights, optimiser state and
    labels."""
    import sys

    import torch

    shared = ["data.synth.clips_per_class=2", "data.synth.clip_seconds=3", "train.epochs=1",
              f"data.root={tmp_path / 'corpus'}",
              f"data.cache_dir={tmp_path / 'cache'}"]
    runs = {}
    for name, hog in (("alone", False), ("beside_hog", True)):
        _run_beside([sys.executable, "-m", "hear_sela.cli", "train", "demo", *shared,
                     f"train.out_dir={tmp_path / name}"], hog, timeout=600)
        runs[name] = dict(_tensors(torch.load(tmp_path / name / "final.pt", weights_only=True)))
    alone, loaded = runs["alone"], runs["beside_hog"]
    assert alone.keys() == loaded.keys() and "label_store.labels" in alone and len(alone) > 50
    differing = [k for k in alone if not torch.equal(alone[k], loaded[k])]
    assert not differing, differing


@pytest.mark.slow
def test_quick_demo_repeats_beside_a_cpu_hog(tmp_path):
    """`hear-sela demo --quick` run twice, the second time beside a busy-loop process, prints the same
    tables and writes byte-identical scores."""
    import sys

    printed = {}
    for name, hog in (("first", False), ("beside_hog", True)):
        run = _run_beside([sys.executable, "-m", "hear_sela.cli", "demo", "--quick", "--out", str(tmp_path / name)],
                          hog, timeout=1800)
        printed[name] = [line for line in run.stdout.splitlines() if line.startswith("|")]
    assert printed["first"] and printed["first"] == printed["beside_hog"]
    for path in ("analysis/metrics.csv", "analysis/labels.csv", "evaluation/comparison.csv"):
        assert (tmp_path / "first" / path).read_bytes() == (tmp_path / "beside_hog" / path).read_bytes(), path
