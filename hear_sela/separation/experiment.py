"""The whole experiment of the paper's Table 1 at a configurable scale, one command: sources -> mixtures -> teacher
on every mixture -> students (ground truth all / subset, teacher labels at each alpha) -> mono test evaluation ->
ensembles -> confidence-quality correlation -> OUT/table.md and OUT/results.json.

Choices the paper leaves open (recorded in the table's notes): the teacher feature (TeacherConfig.features); the
ground-truth labels are the ideal binary mask argmax_k |S_k| of the mic-0 source images; a mixture's confidence is
its magnitude-weighted mean C (= sum of w(1)); the random ensemble picks either part with probability 1/2; the
confidence switch sends a test mixture to the student when its confidence is below the `switch_quantile` quantile
of the validation mixtures'; Quality/Quantity are computed on the training set; a rerun reuses finished students.
Legend: M mixtures, F bins, T frames.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr

from hear_sela.checkpoint import atomic_write
from hear_sela.separation import mixtures as mixlib
from hear_sela.separation.confidence import weights
from hear_sela.separation.config import SeparationConfig
from hear_sela.separation.metrics import partition_similarity, separation_scores
from hear_sela.separation.sources import SPLITS, source_files
from hear_sela.separation.stft import istft, stft
from hear_sela.separation.student import TrainSet, load_student, log_magnitude, separate_mono, train_student
from hear_sela.separation.teacher import cluster

log = logging.getLogger("hear_sela.separation.experiment")

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


@dataclass
class SplitData:
    mixtures: list[mixlib.Mixture]
    feats: np.ndarray  # (M, T, F) student input (log magnitude of mic 0)
    magnitude: np.ndarray  # (M, T, F) |X0|
    gt: np.ndarray  # (M, T, F) ideal-binary-mask labels
    est: np.ndarray  # (M, T, F) teacher hard labels
    confidence: np.ndarray  # (M, T, F) C = C_cl C_JSD C_post
    gamma: np.ndarray  # (M, 2, F, T) teacher soft masks
    terms: list[dict[str, float]]  # per mixture: c_cl, c_jsd, mean C_post, gate fraction

    def mixture_confidence(self, alpha: float = 1.0) -> np.ndarray:
        """(M,) sum of w(alpha) per mixture: the magnitude-weighted mean of C^alpha."""
        return np.array([weights(c, m, alpha).sum() for c, m in zip(self.confidence, self.magnitude)])


def _mixtures(cfg: SeparationConfig) -> dict[str, list[mixlib.Mixture]]:
    """Generate (or reuse, when generated from the same settings) the mixtures of every split."""
    files = source_files(cfg.sources)
    root = Path(cfg.mixtures.root)
    stamp = json.dumps({"sources": asdict(cfg.sources), "mixtures": asdict(cfg.mixtures)}, sort_keys=True)
    out = {}
    for split in SPLITS:
        folder = root / split
        stamp_file = folder / "settings.json"
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            out[split] = mixlib.read_split(folder)
            continue
        out[split] = mixlib.generate_split(files[split], cfg.mixtures.counts[split], cfg.mixtures, split,
                                           cfg.mixtures.seed)
        mixlib.write_split(out[split], folder, cfg.mixtures.sample_rate)
        stamp_file.write_text(stamp)
        log.info("mixtures %s: %d written to %s", split, len(out[split]), folder)
    return out


def _analyse(mixes: list[mixlib.Mixture], cfg: SeparationConfig, features: str) -> SplitData:
    tc = replace(cfg.teacher, features=features)
    feats, mags, gts, ests, confs, gammas, terms = [], [], [], [], [], [], []
    for m in mixes:
        out = cluster(m.mix, tc, cfg.mixtures.sample_rate, cfg.mixtures.speed_of_sound)
        x0 = stft(m.mix[0], tc.n_fft, tc.hop)  # (F, T)
        src = np.abs(stft(m.sources[:, 0], tc.n_fft, tc.hop))  # (2, F, T)
        feats.append(log_magnitude(m.mix[0], tc))
        mags.append(np.abs(x0).T)
        gts.append(src.argmax(0).T)
        ests.append(out.labels.T)
        confs.append(out.confidence.T)
        gammas.append(out.gamma)
        terms.append({"c_cl": out.c_cl, "c_jsd": out.c_jsd, "c_post": float(out.c_post.mean()),
                      "gate": float(out.gate.mean())})
    return SplitData(mixes, np.stack(feats), np.stack(mags).astype(np.float32), np.stack(gts), np.stack(ests),
                     np.stack(confs), np.stack(gammas), terms)


def _masked_scores(data: SplitData, masks: np.ndarray, tc) -> list[dict[str, float]]:
    """masks (M, 2, F, T) on mic 0 -> per-mixture scores against the mic-0 source images."""
    out = []
    for m, mk in zip(data.mixtures, masks):
        est = istft(mk * stft(m.mix[0], tc.n_fft, tc.hop)[None], tc.n_fft, tc.hop, m.mix.shape[1])
        out.append(separation_scores(m.sources[:, 0], est, m.mix[0]))
    return out


def _trainset(d: SplitData, sel: np.ndarray, kind: str, alpha: float) -> TrainSet:
    """The student's data for mixtures `sel`: ground-truth labels with w(0), or teacher labels with w(alpha)."""
    labels = d.gt if kind == "gt" else d.est
    conf = np.ones_like(d.confidence[sel]) if kind == "gt" else d.confidence[sel]
    w = np.stack([weights(cc, mm, alpha) for cc, mm in zip(conf, d.magnitude[sel])]).astype(np.float32)
    return TrainSet(d.feats[sel], labels[sel], w)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run_experiment(cfg: SeparationConfig) -> dict[str, Any]:
    t0, c0 = time.time(), time.process_time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}

    def lap(name: str, t: float, c: float) -> tuple[float, float]:
        timing[f"{name}_s"] = time.time() - t
        timing[f"{name}_cpu_s"] = time.process_time() - c
        return time.time(), time.process_time()

    t, c = time.time(), time.process_time()
    mixes = _mixtures(cfg)
    t, c = lap("data", t, c)
    data = {split: _analyse(mixes[split], cfg, cfg.teacher.features) for split in SPLITS}
    other = "paper" if cfg.teacher.features == "freqnorm" else "freqnorm"
    test_other = _analyse(mixes["test"], cfg, other)
    t, c = lap("teacher", t, c)
    tc = cfg.teacher
    tr, va, te = data["train"], data["val"], data["test"]
    rows: dict[str, dict[str, Any]] = {}
    per_mix: dict[str, list[dict[str, float]]] = {}
    ibm = np.stack([np.stack([k == g.T for k in range(2)]) for g in te.gt]).astype(np.float32)
    per_mix["ibm"] = _masked_scores(te, ibm, tc)
    per_mix["teacher"] = _masked_scores(te, te.gamma, tc)
    per_mix["teacher_" + other] = _masked_scores(test_other, test_other.gamma, tc)
    t, c = lap("mask_eval", t, c)

    # students: (name, labels, alpha, mixture subset, epochs)
    n_sub = max(2, int(round(cfg.student.subset_fraction * len(tr.feats))))
    subset = np.sort(np.random.default_rng(cfg.student.seed).choice(len(tr.feats), n_sub, replace=False))
    plans = [("gt_all", "gt", 0.0, np.arange(len(tr.feats)), cfg.student.epochs),
             ("gt_subset", "gt", 0.0, subset, cfg.student.subset_epochs)]
    plans += [(f"est_{a:.1f}", "est", a, np.arange(len(tr.feats)), cfg.student.epochs) for a in cfg.alphas]
    gt_total = float(sum(weights(np.ones(1), m, 0.0).sum() for m in tr.magnitude))  # = M
    train_info = {}
    for name, kind, alpha, idx, epochs in plans:
        train = _trainset(tr, idx, kind, alpha)
        ckpt = out_dir / "students" / f"{name}.pt"
        info_file = ckpt.with_suffix(".json")
        # a finished student is reused only if trained from exactly these settings
        stamp = {k: v for k, v in asdict(cfg).items() if k in ("sources", "mixtures", "teacher", "student")}
        stamp.update(alpha=alpha, epochs=epochs)
        old = json.loads(info_file.read_text()) if info_file.is_file() else {}
        if ckpt.is_file() and old.get("stamp") == json.loads(json.dumps(stamp)):
            train_info[name] = old
        else:
            meta = {"name": name, "labels": kind, "alpha": alpha, "mixtures": len(idx),
                    "teacher": asdict(cfg.teacher), "sample_rate": cfg.mixtures.sample_rate}
            val = _trainset(va, np.arange(len(va.feats)), kind, alpha)
            info = {**train_student(train, val, cfg.student, epochs, ckpt, meta), "stamp": stamp}
            atomic_write(info_file, lambda p, info=info: Path(p).write_text(json.dumps(info)))
            train_info[name] = info
        quality = 1.0 if kind == "gt" else float(
            np.sum([partition_similarity(g, e, w) * w.sum() for g, e, w in zip(tr.gt, tr.est, train.weights)])
            / max(float(train.weights.sum()), 1e-12))
        student = load_student(ckpt)
        per_mix[name] = [separation_scores(m.sources[:, 0], separate_mono(student, m.mix[0], cfg.student.seed),
                                           m.mix[0]) for m in te.mixtures]
        rows[name] = {"quality": quality, "quantity": float(train.weights.sum()) / gt_total}
        t, c = lap(f"student_{name}", t, c)

    # ensembles on the stereo test mixtures: the teacher or the alpha = ensemble_alpha student, per mixture
    dc = per_mix[f"est_{cfg.ensemble_alpha:.1f}"]
    sp = per_mix["teacher"]
    oracle = [a if a["sdr"] >= b["sdr"] else b for a, b in zip(sp, dc)]
    coin = np.random.default_rng(cfg.student.seed).random(len(sp)) < 0.5
    random_pick = [b if k else a for a, b, k in zip(sp, dc, coin)]
    threshold = float(np.quantile(va.mixture_confidence(1.0), cfg.switch_quantile))
    conf_test = te.mixture_confidence(1.0)
    to_dc = conf_test < threshold
    conf_pick = [b if k else a for a, b, k in zip(sp, dc, to_dc)]
    per_mix.update({"ens_oracle": oracle, "ens_random": random_pick, "ens_conf": conf_pick})
    sdr_teacher = np.array([r["sdr"] for r in sp])
    r_sdr, p_sdr = pearsonr(conf_test, sdr_teacher)
    r_sdri, p_sdri = pearsonr(conf_test, np.array([r["sdri"] for r in sp]))
    other_conf = test_other.mixture_confidence(1.0)
    r_other, p_other = pearsonr(other_conf, np.array([r["sdr"] for r in per_mix["teacher_" + other]]))
    timing["total_s"] = time.time() - t0
    timing["total_cpu_s"] = time.process_time() - c0
    results = {
        "config": asdict(cfg),
        "rows": {k: {**rows.get(k, {}), **_mean(v)} for k, v in per_mix.items()},
        "input": {"sdr": float(np.mean([r["sdr"] - r["sdri"] for r in sp]))},
        "ensemble": {"threshold": threshold, "fraction_to_student": float(to_dc.mean()),
                     "oracle_fraction_student": float(np.mean([a["sdr"] < b["sdr"] for a, b in zip(sp, dc)]))},
        "correlation": {"r_sdr": float(r_sdr), "p_sdr": float(p_sdr), "r_sdri": float(r_sdri),
                        "p_sdri": float(p_sdri), f"r_sdr_{other}": float(r_other), f"p_sdr_{other}": float(p_other)},
        "teacher_terms": {k: float(np.mean([x[k] for x in tr.terms])) for k in tr.terms[0]},
        "train": {k: {kk: v[kk] for kk in ("seconds", "cpu_seconds", "parameters")} for k, v in train_info.items()},
        "timing": timing,
        "per_mixture_test": {k: v for k, v in per_mix.items()},
        "mixture_confidence_test": conf_test.tolist(),
    }
    atomic_write(out_dir / "results.json", lambda p: Path(p).write_text(json.dumps(results, indent=1)))
    table = format_table(results, other)
    atomic_write(out_dir / "table.md", lambda p: Path(p).write_text(table))
    return results


def format_table(res: dict[str, Any], other: str) -> str:
    cfg = res["config"]
    mc, sc = cfg["mixtures"], cfg["student"]
    names = {
        "gt_all": ("1ch", f"DC w/ ground truth (all {mc['counts']['train']})", "DC w/ ground truth (20k)"),
        "gt_subset": ("1ch", f"DC w/ ground truth ({sc['subset_fraction']:.0%})", "DC w/ ground truth (1k)"),
        **{f"est_{a:.1f}": ("1ch", f"DC w/ estimates, α = {a:g}", "") for a in cfg["alphas"]},
        "ibm": ("1ch", "Ideal binary mask (oracle)", ""),
        "teacher": ("2ch", f"Spatial algorithm ({cfg['teacher']['features']})", ""),
        "teacher_" + other: ("2ch", f"Spatial algorithm ({other})", ""),
        "ens_oracle": ("2ch", f"Ensemble (oracle, α = {cfg['ensemble_alpha']:g})", ""),
        "ens_random": ("2ch", f"Ensemble (random, α = {cfg['ensemble_alpha']:g})", ""),
        "ens_conf": ("2ch", f"Ensemble (conf., α = {cfg['ensemble_alpha']:g})", ""),
    }

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["| | Approach | Quality | Quantity | SDR | SIR | SAR | SDRi | paper Quality | paper Quantity | "
             "paper SDR | paper SIR | paper SAR |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, (ch, label, _) in names.items():
        r = res["rows"][key]
        p = PAPER.get(key, (None,) * 5) if key != "teacher_" + other else (None,) * 5
        lines.append(f"| {ch} | {label} | {f(r.get('quality'), '.3f')} | {f(r.get('quantity'), '.3f')} | "
                     f"{r['sdr']:.1f} | {r['sir']:.1f} | {r['sar']:.1f} | {r['sdri']:.1f} | {f(p[0], '.3f')} | "
                     f"{f(p[1], '.3f')} | {f(p[2], '.1f')} | {f(p[3], '.1f')} | {f(p[4], '.1f')} |")
    c, e = res["correlation"], res["ensemble"]
    lines += [
        "",
        f"SDR/SIR/SAR: SI-SDR/SI-SIR/SI-SAR (dB, best permutation, mean over {mc['counts']['test']} test mixtures "
        f"and both sources, mic 0); SDRi: SI-SDR improvement over the mixture (input SI-SDR "
        f"{res['input']['sdr']:.1f} dB). The paper reports absolute values on wsj0-2mix (input ≈ 0 dB).",
        f"Confidence vs teacher quality (test mixtures): r = {c['r_sdr']:.2f} (p = {c['p_sdr']:.2g}) with SI-SDR, "
        f"r = {c['r_sdri']:.2f} (p = {c['p_sdri']:.2g}) with SI-SDRi; {other} teacher: r = "
        f"{c[f'r_sdr_{other}']:.2f} (p = {c[f'p_sdr_{other}']:.2g}). Paper: r = 0.36, p ≪ 0.001.",
        f"Confidence switch: threshold {e['threshold']:.4f} (the {cfg['switch_quantile']:.0%} quantile of the "
        f"validation mixtures' confidence) sends {e['fraction_to_student']:.0%} of test mixtures to the student; "
        f"the oracle picks the student for {e['oracle_fraction_student']:.0%}.",
        f"Scale: {mc['counts']} mixtures of {mc['seconds']:g} s at {mc['sample_rate']} Hz; student BLSTM "
        f"{sc['layers']} x {sc['hidden']} per direction, D = {sc['embedding_dim']}, "
        f"{res['train']['gt_all']['parameters'] / 1e6:.2f} M parameters, {sc['epochs']} epochs "
        f"({sc['subset_epochs']} for the subset), batch {sc['batch_size']}; wall {res['timing']['total_s'] / 60:.1f} "
        f"min, CPU {res['timing']['total_cpu_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"
