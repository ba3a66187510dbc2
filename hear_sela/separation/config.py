"""Configuration of the bootstrapped-separation recipe (Seetharaman et al., ICASSP 2019): dataclasses are the truth,
recipes/separation/*.yaml override them, `a.b=v` overrides override the recipe (the same loader rules as
hear_sela.config: unknown keys and wrong types are rejected naming the key and the file).

Defaults are the paper's settings where it states them (notes/seed003_selavi.md Part 1); "(ours)" marks a choice
the paper leaves open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hear_sela.config import ConfigError, _from_dict, path_field, recipe_data


@dataclass
class SourcesConfig:
    """Mono speech sources: espeak-ng synthesis (this recipe only; never the encoder's corpus) or a folder."""

    kind: str = "espeak"  # espeak | folder
    # espeak: written here; folder: <root>/<split>/*.wav read from here, the voice of a file is its stem up to
    # the last "_" (as espeak files are named: <voice>_<i>.wav)
    root: str = path_field("data/separation/sources")
    # espeak-ng voices are language x variant; a variant is held out whole, so a test voice differs from every
    # training voice in its variant (timbre) and not only its accent. 8 x 10 = 80 training voices.
    languages: list[str] = field(default_factory=lambda: [
        "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"])
    train_variants: list[str] = field(default_factory=lambda: [
        "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4"])
    val_variants: list[str] = field(default_factory=lambda: ["m8"])
    test_variants: list[str] = field(default_factory=lambda: ["m7", "f5"])
    utterances_per_voice: dict[str, int] = field(default_factory=lambda: {"train": 25, "val": 25, "test": 40})
    words_per_utterance: tuple[int, int] = (6, 12)  # (ours)
    speed_wpm: tuple[int, int] = (140, 190)  # (ours) espeak-ng -s, drawn per utterance
    pitch: tuple[int, int] = (30, 70)  # (ours) espeak-ng -p, drawn per utterance
    seed: int = 0


@dataclass
class MixtureConfig:
    """Anechoic far-field two-microphone mixtures of two sources (wsj0-2mix-like levels)."""

    root: str = path_field("data/separation/mixtures")
    sample_rate: int = 8000  # paper
    seconds: float = 2.0  # (ours; paper <= 3.2 s training sequences) each source cropped/padded to this
    level_db: float = 5.0  # relative level U(0, level_db) dB between the sources, as wsj0-2mix
    spacing_m: tuple[float, float] = (0.05, 0.20)  # (ours) mic spacing U(a, b)
    min_angle_deg: float = 10.0  # (ours) the two directions of arrival differ by at least this
    peak: float = 0.9  # (ours) mixture peak; fixes the absolute scale the -10 dB gate refers to
    speed_of_sound: float = 343.0
    # train: the fixed pool the teacher labels once (cached); val: held-out mixtures for the learning curves,
    # Quality/Quantity and the confidence switch; test: unseen voices, always two different voices;
    # test_same: unseen voices, both sources of one voice (reported as separate rows, never trained on)
    counts: dict[str, int] = field(default_factory=lambda: {"train": 2000, "val": 200, "test": 500, "test_same": 100})
    seed: int = 0


@dataclass
class TeacherConfig:
    """Spatial clustering of one stereo mixture (paper Sec. 2.1-2.2)."""

    n_fft: int = 256  # 32 ms at 8 kHz (paper)
    hop: int = 64  # 8 ms (paper)
    features: str = "freqnorm"  # paper (pooled cos/sin IPD -> PCA) | freqnorm (ours: delay IPD/omega, see teacher.py)
    gate_db: float = -10.0  # paper tau, absolute 20 log10|X| with an unnormalised FFT and the mixture peak above
    # the GMM, its JSD and C_cl use the bins above this percentile of |X0| (nussl's threshold=95: the loudest 5 %);
    # null: the absolute gate_db instead. An absolute -10 dB keeps a third of the bins and anti-correlates C_JSD
    # with the teacher's label accuracy (issue 27)
    gate_percentile: float | None = 95.0
    max_spacing_m: float = 0.20  # freqnorm: fit only below c / (2 d_max); an upper bound, not the true spacing
    components: int = 2  # paper N
    jsd_samples: int = 20000  # (ours; nussl 1e5) Monte-Carlo draws from each GMM; JSD in bits so it lies in [0, 1]
    cluster_bins: str = "gated"  # (ours) f_j of C_cl over the gated bins | all (the paper's text)
    seed: int = 0


@dataclass
class StudentConfig:
    """Single-channel deep-clustering BLSTM (paper: 4 x 300 per direction, tanh dense, D = 15), trained for a number
    of updates on random crops: the ground-truth student on dynamic mixtures (a fresh pair of different training
    voices per example), the teacher-trained students on crops of the teacher-labelled pool."""

    hidden: int = 300
    layers: int = 4
    embedding_dim: int = 15
    updates: int = 50000  # paper: 100 epochs x 20k mixtures / batch 40
    crop_seconds: float = 2.0  # (ours) training crop; the paper trained on sequences of at most 3.2 s
    batch_size: int = 40  # paper
    lr: float = 1e-3  # paper, Adam
    # the LR halves when the mean training loss of a window of `plateau_window` updates has not improved for
    # `plateau_patience` windows (the paper keys it to the validation loss per epoch; there are no epochs here)
    plateau_window: int = 500
    plateau_patience: int = 5
    # loss normalisation: example = nussl's DeepClusteringLoss (each example / (sum_i w_i)^2, mean over the batch);
    # batch = the batch's sum / sum_b (sum_i w_i)^2 (keeps the weight of a whole mixture relative to the others);
    # none = the raw sum (issue 27: its gradient scales with the mean weight, below Adam's eps at alpha = 2)
    loss_norm: str = "example"
    eval_every: int = 500  # learning curve: SI-SDR on `curve_mixtures` validation mixtures every this many updates
    curve_mixtures: int = 40
    subset_fraction: float = 0.05  # paper: 1k of 20k; the ground-truth subset student trains on this share of the pool
    kmeans_init: int = 3  # (ours) K-means restarts at inference, fitted on the gated bins, applied to all
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch CPU threads
    seed: int = 0  # initialisation and data order; the table's extra seeds override it


@dataclass
class SeparationConfig:
    name: str = "separation"
    out_dir: str = path_field("runs/separation")
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    mixtures: MixtureConfig = field(default_factory=MixtureConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0])  # paper
    ensemble_alpha: float | None = 1.0  # paper: ensembles use the alpha = 1 student; null: the best alpha > 0
    # the students the claims rest on (ground truth, alpha = 0 and the best alpha > 0 on validation SI-SDR) are
    # trained with each of these seeds; the other rows with the first only
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    switch_quantile: float = 0.25  # paper: bottom quartile of the validation mixtures' mean confidence


def _check(cfg: SeparationConfig) -> None:
    """Values the types allow but the recipe cannot run with: ConfigError naming the key."""
    bad = []
    if cfg.student.loss_norm not in ("example", "batch", "none"):
        bad.append(f"student.loss_norm: {cfg.student.loss_norm!r} (example | batch | none)")
    if cfg.teacher.features not in ("paper", "freqnorm"):
        bad.append(f"teacher.features: {cfg.teacher.features!r} (paper | freqnorm)")
    if cfg.teacher.gate_percentile is not None and not 0 <= cfg.teacher.gate_percentile < 100:
        bad.append(f"teacher.gate_percentile: {cfg.teacher.gate_percentile} (in [0, 100), or null for gate_db)")
    if cfg.teacher.components != 2:
        bad.append(f"teacher.components: {cfg.teacher.components} (the recipe separates two sources)")
    if not cfg.seeds:
        bad.append("seeds: empty (at least one)")
    if cfg.ensemble_alpha is not None and cfg.ensemble_alpha not in cfg.alphas:
        bad.append(f"ensemble_alpha: {cfg.ensemble_alpha} is not one of alphas {cfg.alphas} (or null: the best)")
    missing = {"train", "val", "test", "test_same"} - set(cfg.mixtures.counts)
    if missing:
        bad.append(f"mixtures.counts: no count for {sorted(missing)}")
    if bad:
        raise ConfigError("; ".join(bad))


def separation_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> SeparationConfig:
    try:
        cfg = _from_dict(SeparationConfig, data, "")
        _check(cfg)
        return cfg
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_separation_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                           ) -> SeparationConfig:
    """Defaults <- recipe YAML (optional) <- dotted overrides. Errors name the file and the key."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe not found: {path}")
    return separation_config_from_dict(*recipe_data(path, overrides))
