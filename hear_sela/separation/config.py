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
    # espeak: written here; folder: <root>/<split>/*.wav read from here
    root: str = path_field("data/separation/sources")
    # espeak-ng voices (language+variant), disjoint per split so test voices are unseen
    train_voices: list[str] = field(default_factory=lambda: [
        "en-us+m1", "en-us+m2", "en-us+m3", "en-us+f1", "en-us+f2", "en-gb+m4", "en-gb+f3", "en-gb-scotland+m5",
        "en-029+f4", "en-gb-x-rp+m6"])
    val_voices: list[str] = field(default_factory=lambda: ["en-us+m7", "en-gb+f5", "en-gb-x-gbclan+m3"])
    test_voices: list[str] = field(default_factory=lambda: ["en-us-nyc+m2", "en-gb-x-gbcwmd+f2", "en-gb+m7",
                                                            "en-029+f1"])
    utterances_per_voice: dict[str, int] = field(default_factory=lambda: {"train": 40, "val": 30, "test": 25})
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
    counts: dict[str, int] = field(default_factory=lambda: {"train": 400, "val": 100, "test": 100})
    seed: int = 0


@dataclass
class TeacherConfig:
    """Spatial clustering of one stereo mixture (paper Sec. 2.1-2.2)."""

    n_fft: int = 256  # 32 ms at 8 kHz (paper)
    hop: int = 64  # 8 ms (paper)
    features: str = "freqnorm"  # paper (pooled cos/sin IPD -> PCA) | freqnorm (ours: delay IPD/omega, see teacher.py)
    gate_db: float = -10.0  # paper tau, absolute 20 log10|X| with an unnormalised FFT and the mixture peak above
    max_spacing_m: float = 0.20  # freqnorm: fit only below c / (2 d_max); an upper bound, not the true spacing
    components: int = 2  # paper N
    jsd_samples: int = 20000  # (ours; nussl 1e5) Monte-Carlo draws from each GMM; JSD in bits so it lies in [0, 1]
    cluster_bins: str = "gated"  # (ours) f_j of C_cl over the gated bins | all (the paper's text)
    seed: int = 0


@dataclass
class StudentConfig:
    """Single-channel deep-clustering BLSTM (paper: 4 x 300 per direction, tanh dense, D = 15)."""

    hidden: int = 300
    layers: int = 4
    embedding_dim: int = 15
    epochs: int = 100  # paper
    subset_epochs: int = 100  # epochs of the 5 % ground-truth model (paper: the same 100)
    batch_size: int = 40  # paper
    lr: float = 1e-3  # paper, Adam
    plateau_patience: int = 5  # paper: halve the LR after 5 epochs without validation improvement
    subset_fraction: float = 0.05  # paper: 1k of 20k
    kmeans_init: int = 3  # (ours) K-means restarts at inference, fitted on the gated bins, applied to all
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch CPU threads
    seed: int = 0  # one initialisation shared by every model (paper)


@dataclass
class SeparationConfig:
    name: str = "separation"
    out_dir: str = path_field("runs/separation")
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    mixtures: MixtureConfig = field(default_factory=MixtureConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0])  # paper
    ensemble_alpha: float = 1.0  # paper: ensembles use the alpha = 1 student
    switch_quantile: float = 0.25  # paper: bottom quartile of the validation mixtures' mean confidence


def separation_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> SeparationConfig:
    try:
        return _from_dict(SeparationConfig, data, "")
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
