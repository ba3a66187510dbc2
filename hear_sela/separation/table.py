"""OUT/table.md from the experiment's results: one table per test split (different voices, same voice), both
mask kinds for every row, intervals per stats.py, the paired differences the paper's claims rest on, the
confidence study and the learning curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from hear_sela.separation.stats import Interval, paired_difference, row_interval

# Seetharaman et al. 2019, Table 1 (anechoic spatialised wsj0-2mix, 20k training mixtures): quality, quantity,
# SDR, SIR, SAR (SI-SDR family, dB)
PAPER: dict[str, tuple[Any, ...]] = {
    "gt_all": (1.000, 1.000, 9.2, 22.4, 9.5),
    "gt_subset": (1.000, 0.050, 2.5, 11.5, 3.3),
    "est_0.0": (0.303, 1.000, 1.8, 11.9, 2.8),
    "est_0.5": (0.362, 0.205, 2.8, 13.5, 3.6),
    "est_1.0": (0.387, 0.054, 2.9, 13.5, 3.7),
    "est_2.0": (0.400, 0.005, 1.8, 11.5, 2.7),
    "teacher": (None, None, 4.3, 17.3, 5.6),
    "ens_oracle": (None, None, 6.2, 19.6, 7.0),
    "ens_random": (None, None, 3.6, 15.4, 4.6),
    "ens_conf": (None, None, 5.0, 18.3, 5.9),
}


def _label(key: str, res: dict[str, Any]) -> str:
    if key.startswith("est_"):
        return f"DC w/ estimates, α = {float(key[4:]):g}"
    ens = res["ensemble"]["student"]
    return {"gt_all": "DC w/ ground truth (dynamic mixing)", "gt_subset": "DC w/ ground truth (5 % of the pool)",
            "ibm": "Ideal binary mask (oracle)", "teacher": f"Spatial teacher ({res['config']['teacher']['features']})",
            f"teacher_{res['teacher_other']}": f"Spatial teacher ({res['teacher_other']})",
            "ens_oracle": f"Ensemble oracle (teacher / {ens})", "ens_random": f"Ensemble random, expectation ({ens})",
            "ens_conf": f"Ensemble confidence switch ({ens})"}.get(key, key)


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def split_table(res: dict[str, Any], split: str) -> list[str]:
    rows = res["scores"][split]
    qq = res["quality_quantity_val"]
    lines = ["| Approach | seeds | Quality | Quantity | SI-SDR binary [95 %] | SI-SDR soft [95 %] | SI-SDRi binary | "
             "SI-SIR binary | SI-SAR binary | paper SDR |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = ["gt_all", "gt_subset"] + sorted(k for k in rows if k.startswith("est_")) + [
        "ibm", "teacher", f"teacher_{res['teacher_other']}", "ens_oracle", "ens_random", "ens_conf"]
    for key in [k for k in order if k in rows]:
        r = rows[key]
        b, s = row_interval(np.array(r["binary"]["sdr"])), row_interval(np.array(r["soft"]["sdr"]))
        q = qq.get(key, {"gt_all": {"quality": 1.0, "quantity": 1.0},
                         "gt_subset": {"quality": 1.0, "quantity": res["config"]["student"]["subset_fraction"]}
                         }.get(key, {}))
        paper = PAPER.get(key, (None,) * 5) if split == "test" else (None,) * 5
        lines.append(f"| {_label(key, res)} | {len(r['binary']['sdr'])} | {_f(q.get('quality'), '.3f')} | "
                     f"{_f(q.get('quantity'), '.3f')} | {b.text()} | {s.text()} | "
                     f"{np.mean(r['binary']['sdri']):.1f} | {np.mean(r['binary']['sir']):.1f} | "
                     f"{np.mean(r['binary']['sar']):.1f} | {_f(paper[2], '.1f')} |")
    return lines


def differences(res: dict[str, Any], split: str) -> list[tuple[str, str, Any]]:
    """(label, mode, PairedDifference) for the paper's claims on one split."""
    rows = res["scores"][split]
    ens = res["ensemble"]["student"]
    out = []
    for mode in ("binary", "soft"):
        sdr = {k: np.array(v[mode]["sdr"]) for k, v in rows.items()}
        for key in sorted(k for k in rows if k.startswith("est_") and k != "est_0.0"):
            if "est_0.0" in rows:
                out.append((f"{key} − est_0.0", mode, paired_difference(sdr[key], sdr["est_0.0"])))
        out.append(("ens_conf − teacher", mode, paired_difference(sdr["ens_conf"], sdr["teacher"])))
        out.append((f"ens_conf − {ens}", mode, paired_difference(sdr["ens_conf"], sdr[ens])))
        out.append(("ens_random − teacher", mode, paired_difference(sdr["ens_random"], sdr["teacher"])))
    return out


def _interval(i: Interval | None) -> str:
    return "-" if i is None else f"{i.text(2)} (n = {i.n} {i.over})"


def format_table(res: dict[str, Any]) -> str:
    cfg = res["config"]
    mc, sc = cfg["mixtures"], cfg["student"]
    lines = []
    for split, title in (("test", "different voices"), ("test_same", "same voice")):
        lines += [f"### Test mixtures of unseen voices, {title} ({mc['counts'][split]} mixtures)", ""]
        lines += split_table(res, split) + [""]
        lines += ["| Paired difference (SI-SDR, dB) | masks | over mixtures [95 %] | over seeds [95 %] | "
                  "interval excludes 0 |", "|---|---|---|---|---|"]
        for label, mode, d in differences(res, split):
            lines.append(f"| {label} | {mode} | {_interval(d.mixtures)} | {_interval(d.seeds)} | "
                         f"{'yes' if d.excludes_zero() else 'no'} |")
        lines.append("")
    cs = res["confidence_vs_accuracy_train"]
    r = cs["r"]
    e = res["ensemble"]
    lines += [
        f"Confidence vs the teacher's label accuracy on the {mc['counts']['train']} training-pool mixtures "
        f"(accuracy {cs['accuracy_mean']:.3f}, GMM fitted on {cs['gate_fraction']:.1%} of the bins): "
        + ", ".join(f"{k} r = {v['r']:.2f} (p = {v['p']:.2g})" for k, v in r.items())
        + f". Mixture confidence vs the teacher's soft SI-SDR on the test mixtures: r = "
        f"{res['confidence_vs_sdr_test']['r']:.2f} (paper: 0.36).",
        f"Best alpha > 0 on validation SI-SDR: {res['best_alpha']}; the ensembles use {e['student']}; the switch "
        f"threshold {e['threshold']:.4f} (the {cfg['switch_quantile']:.0%} quantile of the validation mixtures' "
        f"confidence) sends {e['fraction_to_student']['test']:.0%} of the different-voice test mixtures to the "
        "student. The random row is the expectation over all coin draws.",
        "Intervals: Student-t 95 % over the per-seed means where a row has several seeds, otherwise over the test "
        "mixtures of its one seed (which says nothing about another initialisation). Quality and Quantity: on the "
        "held-out validation mixtures.",
        f"Scale: pool {mc['counts']['train']} mixtures of {mc['seconds']:g} s, {sc['updates']} updates of batch "
        f"{sc['batch_size']} ({sc['crop_seconds']:g} s crops), BLSTM {sc['layers']} x {sc['hidden']}; wall "
        f"{res['timing']['total_s'] / 60:.1f} min, CPU {res['timing']['total_cpu_s'] / 60:.1f} min.",
        "", "Learning curves (validation SI-SDR, binary masks, dB, by update; CPU minutes at the end):", "",
    ]
    for name, seeds in res["train"].items():
        for seed, info in seeds.items():
            pts = ", ".join(f"{p['update']}: {p['val_sdr']:.1f}" for p in info["curve"])
            lines.append(f"- {name} seed {seed}: {pts} ({info['cpu_seconds'] / 60:.0f} CPU min)")
    return "\n".join(lines) + "\n"
