"""Configuration: dataclasses are the truth, YAML recipes override them, `a.b=v` overrides override the recipe.

Unknown keys are rejected with the key's dotted path and the file it came from; values are type-checked.
Defaults follow the published settings named in each field's comment (see shared notes/methods.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A recipe or override names an unknown key or gives a value of the wrong type."""


PATH = {"path": True}  # field metadata: a file or folder setting, `~` expanded when the config is built


def path_field(default: str | None) -> Any:
    return field(default=default, metadata=PATH)


MAX_YAML_NODES = 100_000  # a recipe has a few hundred; aliases that expand beyond this are an "alias bomb"


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in `node` with every alias expanded (each node counted once per use), computed once per node."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise yaml.constructor.ConstructorError(None, None, "a recursive alias (a node that contains itself)",
                                                node.start_mark)
    open_nodes.add(key)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
        node.value if isinstance(node, yaml.SequenceNode) else []
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)", node.start_mark)
    open_nodes.discard(key)
    sizes[key] = size
    return size


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1, PyYAML, needs a dot in the mantissa, YAML 1.2 does not),
    and refuses a document whose aliases expand beyond MAX_YAML_NODES before anything is built from it."""

    def construct_document(self, node: yaml.Node) -> Any:
        _expanded_size(node, {}, set())
        return super().construct_document(node)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str, source: str = "<text>") -> Any:
    """Parse recipe or override text; every YAML read in hear_sela goes through here. Bad YAML (syntax, a tag such
    as !!python/object, an alias bomb) raises ConfigError naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{source}: line {mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML for hear_sela ({problem})") from None


# ---------------------------------------------------------------- value checks (each dataclass's `validate`)


def _require(key: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _at_least(section: str, obj: Any, low: float, *names: str) -> None:
    """Each named field is a finite number >= low (None allowed where the field is optional)."""
    for name in names:
        v = getattr(obj, name)
        if v is not None:
            _require(f"{section}.{name}", v, _finite(v) and v >= low, f">= {low}")


def _above(section: str, obj: Any, low: float, *names: str) -> None:
    """Each named field is a finite number > low (None allowed where the field is optional)."""
    for name in names:
        v = getattr(obj, name)
        if v is not None:
            _require(f"{section}.{name}", v, _finite(v) and v > low, f"> {low}")


def _range(key: str, pair: tuple[float, float]) -> None:
    _require(key, list(pair), all(_finite(v) for v in pair) and 0 < pair[0] <= pair[1],
             "[low, high] with 0 < low <= high")


@dataclass
class FrontendConfig:
    """Log-mel frontend. Default = BYOL-A (16 kHz, n_fft 1024, hop 160, 64 mels, 60-7800 Hz, log(mel + eps))."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int | None = None  # None = n_fft
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    eps: float = 1.1920928955078125e-07  # torch.finfo(float32).eps, as BYOL-A
    backend: Literal["nnaudio", "torchaudio"] = "nnaudio"
    # Normalisation of the log-mel (x - mean) / std; None = not normalised. Filled from the training data's
    # statistics by the feature cache and carried inside every checkpoint and export.
    norm_mean: float | None = None
    norm_std: float | None = None

    def validate(self) -> None:
        _at_least("frontend", self, 1, "sample_rate", "n_fft", "hop_length", "n_mels")
        _require("frontend.win_length", self.win_length, self.win_length is None or 1 <= self.win_length <= self.n_fft,
                 f"in 1..frontend.n_fft ({self.n_fft}) or null")
        _require("frontend.f_min", self.f_min, _finite(self.f_min) and 0 <= self.f_min < self.f_max,
                 f">= 0 and below frontend.f_max ({self.f_max})")
        _require("frontend.f_max", self.f_max, _finite(self.f_max) and self.f_max <= self.sample_rate / 2,
                 f"at most half the sample rate ({self.sample_rate / 2:g})")
        _above("frontend", self, 0, "eps", "norm_std")  # a zero std divides every input by zero
        _require("frontend.norm_mean", self.norm_mean, self.norm_mean is None or _finite(self.norm_mean),
                 "a finite number or null")


FRONTEND_PRESETS: dict[str, dict[str, Any]] = {
    "byola": {},
    # mnuhurr/audio-self-labeling prepare_data.py: n_fft 512, hop 320 (20 ms), 64 mels, 50-8000 Hz
    "sela_audio": {"n_fft": 512, "hop_length": 320, "f_min": 50.0, "f_max": 8000.0},
}


@dataclass
class SynthConfig:
    """The embedded corpus (hear_sela.data.synth)."""

    clips_per_class: int = 40
    clip_seconds: float = 4.0
    seed: int = 0
    classes: list[str] | None = None  # a subset of hear_sela.data.synth.SYNTH_CLASSES; None = all

    def validate(self) -> None:
        _at_least("data.synth", self, 1, "clips_per_class")
        _above("data.synth", self, 0, "clip_seconds")


@dataclass
class DataConfig:
    source: Literal["synth", "folder", "fsd50k"] = "synth"
    # folder or FSD50K root; synth: where the corpus is written (default: under out_dir)
    root: str | None = path_field(None)
    split: Literal["dev", "eval", "train", "val"] = "dev"  # fsd50k
    labels_csv: str | None = path_field(None)  # folder: optional CSV fname,labels for analysis only
    cache_dir: str | None = path_field(None)  # default: <out_dir>/cache
    segment_seconds: float = 3.0  # audio SeLa: 3 s segments with a 1.5 s hop
    hop_seconds: float = 1.5
    min_segment_seconds: float = 1.0  # shorter tails are dropped; longer ones are zero-padded
    pad_short: bool = False  # (ours) a clip shorter than min_segment_seconds: one zero-padded segment, not dropped
    on_bad_file: Literal["skip", "error"] = "skip"  # skip: report with a count; error: stop at the first
    on_stale: Literal["rebuild", "error"] = "rebuild"  # a cache built with another frontend/segments/clip list
    num_workers: int = 2
    synth: SynthConfig = field(default_factory=SynthConfig)

    def validate(self) -> None:
        _above("data", self, 0, "segment_seconds", "hop_seconds")
        _require("data.min_segment_seconds", self.min_segment_seconds, _finite(self.min_segment_seconds)
                 and 0 <= self.min_segment_seconds <= self.segment_seconds,
                 f"in 0..data.segment_seconds ({self.segment_seconds})")
        _at_least("data", self, 0, "num_workers")
        self.synth.validate()


@dataclass
class ModelConfig:
    encoder: str = "audiontt"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Per-sample spectrogram augmentation (BYOL-A chain + audio SeLa extras). Defaults: BYOL-A v1
    (nttcslab/byol-a config.yaml); the audio SeLa code (mnuhurr/audio-self-labeling) turns on the extras."""

    crop_frames: int = 96  # training input crop (BYOL-A: 0.95 s = 96 frames at hop 160); 0 = whole segment
    rrc: bool = True  # BYOL-A RandomResizeCrop
    rrc_virtual_scale: tuple[float, float] = (1.0, 1.5)  # BYOL-A
    rrc_freq_scale: tuple[float, float] = (0.6, 1.5)  # BYOL-A
    rrc_time_scale: tuple[float, float] = (0.6, 1.5)  # BYOL-A
    linear_fader: bool = False  # BYOL-A v2 only (and the audio SeLa code)
    fader_gain: float = 1.0  # BYOL-A v2 RandomLinearFader gain
    mixup: bool = True  # BYOL-A MixupBYOLA (log-mixup-exp)
    mixup_ratio: float = 0.4  # BYOL-A v1 0.4, v2 0.2; audio SeLa code 0.3 (flipped batch)
    mixup_memory: int = 2048  # BYOL-A FIFO of past inputs; 0 = mix with the flipped batch (audio SeLa code)
    specaugment: bool = False  # off in BYOL-A; on in the audio SeLa code
    time_masks: int = 2  # audio SeLa code
    time_mask_width: int = 32  # audio SeLa code
    freq_masks: int = 2  # audio SeLa code
    freq_mask_width: int = 16  # audio SeLa code
    random_gain: bool = False  # off in BYOL-A; on in the audio SeLa code
    gain_range: tuple[float, float] = (0.5, 1.0)  # audio SeLa code; amplitude gain, the power scales by gain**2
    post_norm: bool = True  # BYOL-A v1 NormalizeBatch: standardise each batch (all views together)
    # Random EQ per view: a gain curve over the mel axis, linear between `eq_points` evenly spaced points each drawn
    # from U(-eq_db, eq_db) dB, added to the log power, so no clip keeps its recording's spectral colouring.
    random_eq: bool = False
    eq_db: float = 6.0
    eq_points: int = 5

    def validate(self) -> None:
        _at_least("augment", self, 0, "crop_frames", "fader_gain", "mixup_memory", "time_masks", "time_mask_width",
                  "freq_masks", "freq_mask_width", "eq_db")
        _require("augment.eq_points", self.eq_points, self.eq_points >= 2, ">= 2 (the curve's two ends at least)")
        for name in ("rrc_virtual_scale", "rrc_freq_scale", "rrc_time_scale", "gain_range"):
            _range(f"augment.{name}", getattr(self, name))
        _require("augment.mixup_ratio", self.mixup_ratio, _finite(self.mixup_ratio) and 0 <= self.mixup_ratio <= 1,
                 "in [0, 1]")


# The named choices of sela.marginals (the rest are .npy files), here only: objectives/label_update.py imports them
GAUSS_REDRAW = ("gauss_redraw", "gauss")  # sizes drawn afresh at every update; "gauss" is the older name
GAUSS_SELAVI = "gauss_selavi"  # SeLaVi's default: one draw per head for the whole run, re-sorted at every update
NAMED_MARGINALS = ("uniform", *GAUSS_REDRAW, GAUSS_SELAVI)


@dataclass
class SelaConfig:
    """Self-labeling. Defaults: the audio SeLa code (mnuhurr/audio-self-labeling settings.yaml) unless marked SeLa
    (yukimasano/self-label) or ours."""

    heads: int = 10  # audio SeLa code 10 x 1000 (SeLa ImageNet: 10 x 3000)
    clusters: int = 1000  # audio SeLa code
    head_dropout: float = 0.2  # audio SeLa code: Dropout(0.2) before each head
    # (ours) [hidden, out]: the heads on a shared MLP projector (Linear BN ReLU Linear) instead of on the embedding;
    # [] = on the embedding (audio SeLa code). objectives/heads.py
    projector: list[int] = field(default_factory=list)
    lamb: float = 25.0  # SeLa and audio SeLa code
    tol: float = 0.1  # SeLa 0.1; audio SeLa code 1e-4 (recipes/fsd50k_sela.yaml)
    check_every: int = 10  # SeLa: error checked every 10 iterations
    max_iters: int = 2000  # SeLaVi's cap (SeLa has none)
    # SeLa: uniform | gauss_redraw (Gaussian sizes drawn afresh each update; alias gauss) | gauss_selavi (SeLaVi:
    # one draw per head for the run, re-sorted to the cluster masses each update) | a .npy (K,) or (H, K) prior
    marginals: str = path_field("uniform")
    gauss_sd: float = 0.1  # SeLaVi --gauss_sd
    schedule: Literal["list", "quadratic"] = "list"  # list: audio SeLa code; quadratic: SeLa
    # audio SeLa code: 25 updates over 200 epochs, the first before training (epoch 0 here = before epoch 1)
    update_epochs: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80, 90, 100, 110,
                                 120, 140, 160, 180]
    )
    n_updates: int = 100  # quadratic schedule (SeLa --nopts)
    confidence_alpha: float = 0.0  # (ours) loss weight = confidence**alpha; 0 = off (plain SeLa)
    # (ours, after Seetharaman et al. 2019) the terms multiplied into that confidence: posterior (the solver's),
    # size (cluster size vs its target), agreement (between heads); objectives/confidence.py
    confidence: list[Literal["posterior", "size", "agreement"]] = field(default_factory=lambda: ["posterior"])
    warm_start: bool = True  # (ours; the audio SeLa code has it, off) previous duals seed the next solve
    chunk_size: int = 65536  # (ours) rows per chunk when computing the logits of all segments
    update_batch_size: int = 512  # (ours) segments per encoder forward in the label update
    solver_dtype: Literal["auto", "float32", "float64"] = "auto"  # (ours) auto: float64 when tol < 2 x ~N*5e-7
    # SeLaVi (facebookresearch/selavi): at a label update each segment is embedded under `views` views and each head
    # solved once on the sum of the views' log-softmaxes (the product of their softmaxes), the label shared by all
    # views; 1 = SeLa (the whole segment, no augmentation). Views (objectives/label_views.py): "crops" = random time
    # crops of augment.crop_frames frames; "augment" = draws of the training augmentation chain without mixup.
    # (Mid/side of stereo sources is not offered: the feature cache stores mono, audio being downmixed at decode.)
    views: int = 1
    view_kind: Literal["crops", "augment"] = "crops"
    head_groups: int = 1  # SeLaVi --ind_groups: heads shuffled into G groups, each labelled from its own fresh views

    def validate(self) -> None:
        _at_least("sela", self, 1, "heads", "check_every", "max_iters", "n_updates", "chunk_size",
                  "update_batch_size", "views")
        _at_least("sela", self, 2, "clusters")
        _above("sela", self, 0, "lamb", "tol")  # lamb <= 0 turns the solver's P = softmax^lamb upside down
        _at_least("sela", self, 0, "gauss_sd", "confidence_alpha")
        _require("sela.head_dropout", self.head_dropout, _finite(self.head_dropout) and 0 <= self.head_dropout < 1,
                 "in [0, 1)")
        _require("sela.head_groups", self.head_groups, 1 <= self.head_groups <= self.heads,
                 f"in 1..sela.heads ({self.heads})")
        _require("sela.update_epochs", self.update_epochs, all(e >= 0 for e in self.update_epochs), "epochs >= 0")
        _require("sela.projector", self.projector, self.projector == [] or (
            len(self.projector) == 2 and all(d >= 1 for d in self.projector)), "[] or [hidden, out], both >= 1")
        _require("sela.marginals", self.marginals, self.marginals in NAMED_MARGINALS or self.marginals.endswith(".npy"),
                 f"one of {', '.join(NAMED_MARGINALS)} or a .npy file of the cluster prior")


@dataclass
class ByolConfig:
    """BYOL-A v1 (nttcslab/byol-a config.yaml + byol-pytorch)."""

    projection_hidden: int = 4096  # BYOL-A
    projection_dim: int = 256  # BYOL-A
    ema_decay: float = 0.99  # BYOL-A moving_average_decay

    def validate(self) -> None:
        _at_least("byol", self, 1, "projection_hidden", "projection_dim")
        _require("byol.ema_decay", self.ema_decay, _finite(self.ema_decay) and 0 <= self.ema_decay <= 1, "in [0, 1]")


@dataclass
class OptimConfig:
    """Defaults: the audio SeLa code (BYOL-A: adam, 3e-4, no weight decay, constant, no clipping)."""

    name: Literal["sgd", "adam"] = "sgd"  # audio SeLa code SGD
    lr: float = 0.01  # audio SeLa code
    momentum: float = 0.9  # audio SeLa code (SGD only)
    weight_decay: float = 1e-5  # audio SeLa code
    schedule: Literal["step", "cosine", "constant"] = "step"  # audio SeLa code StepLR
    step_epochs: int = 5  # audio SeLa code StepLR step_size
    gamma: float = 0.98  # audio SeLa code StepLR gamma
    warmup_epochs: int = 0  # (ours) linear warm-up; none in either reference
    clip_grad: float = 10.0  # audio SeLa code; 0 = off

    def validate(self) -> None:
        _above("optim", self, 0, "lr", "gamma")
        _at_least("optim", self, 0, "weight_decay", "warmup_epochs", "clip_grad")
        _at_least("optim", self, 1, "step_epochs")
        _require("optim.momentum", self.momentum, _finite(self.momentum) and 0 <= self.momentum < 1, "in [0, 1)")


@dataclass
class TrainConfig:
    """Defaults: the audio SeLa code (BYOL-A: 100 epochs, batch 256)."""

    objective: Literal["sela", "byol"] = "sela"
    epochs: int = 200  # audio SeLa code
    batch_size: int = 512  # audio SeLa code; the global batch, split evenly over the ranks
    seed: int = 0
    out_dir: str = path_field("runs/default")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # audio SeLa code uses AMP; here bf16 autocast on CUDA, ignored on CPU
    channels_last: bool = True  # (ours) CUDA only
    log_every: int = 50  # (ours) steps between logged training records
    max_steps_per_epoch: int | None = None  # caps an epoch (smoke runs, demos)
    ckpt_every_steps: int | None = None  # (ours) also checkpoint every n steps, for exact resume mid-epoch
    # (ours) never | auto (continue from <out_dir>/last.pt if present) | a checkpoint path
    resume: str = path_field("never")
    # (ours) resume although the data changed since the checkpoint: its weights go on training on the new data;
    # SeLa starts a new label store, labelled by the resumed network at once (not bit-exact, by nature)
    resume_relabel: bool = False

    def validate(self) -> None:
        _at_least("train", self, 1, "epochs", "batch_size", "log_every", "max_steps_per_epoch", "ckpt_every_steps")


@dataclass
class OnlineEvalConfig:
    """(ours) Frozen-encoder probes on dev tasks during training (training/online_eval.py), as solo-learn does for
    images: at step 0 (the untrained init), every `every_steps` steps and at the end, on rank 0."""

    tasks_dir: str = path_field("")  # HEAR task folders (heareval's --tasks-dir layout); "" = off
    tasks: list[str] = field(default_factory=list)  # task folder names; empty = every multiclass scene task there
    every_steps: int = 0  # 0 = only at step 0 and at the end
    max_clips: int = 600  # per task, a fixed seeded subset of its clips (0 = all)
    probes: list[Literal["knn", "logreg"]] = field(default_factory=lambda: ["knn", "logreg"])
    knn_k: int = 10  # neighbours (cosine) of the kNN probe
    logreg_c: float = 1.0  # inverse L2 strength of the logistic-regression probe (on standardised embeddings)
    keep_exports: bool = False  # also write the encoder at each evaluated step (<out_dir>/steps/stepNNNNNNN.pt)

    def validate(self) -> None:
        _at_least("online_eval", self, 0, "every_steps", "max_clips")
        _at_least("online_eval", self, 1, "knn_k")
        _above("online_eval", self, 0, "logreg_c")


@dataclass
class Config:
    name: str = "default"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sela: SelaConfig = field(default_factory=SelaConfig)
    byol: ByolConfig = field(default_factory=ByolConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    online_eval: OnlineEvalConfig = field(default_factory=OnlineEvalConfig)

    def validate(self) -> Config:
        """Every value in range (ConfigError naming the key), so a bad value stops a run before any work."""
        for section in (self.frontend, self.data, self.augment, self.sela, self.byol, self.optim, self.train,
                        self.online_eval):
            section.validate()
        return self


# ---------------------------------------------------------------- building dataclasses from plain data


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Coerce `value` to the annotated type `tp` where that is lossless, else raise ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, choices))}; got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key '{key}' (valid keys here: {', '.join(sorted(names))})")
    kwargs = {k: _check_value(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    for f in dataclasses.fields(cls):  # `data.root=~/audio` as the docs write it: the shell leaves that ~ alone
        if f.metadata.get("path") and isinstance(kwargs.get(f.name), str):
            kwargs[f.name] = os.path.expanduser(kwargs[f.name])
    return cls(**kwargs)


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `update`, nested dicts merged key by key (neither is modified)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}}, the value parsed as YAML (so 1e-4, true, [1, 2] work)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key.path=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    value = load_yaml(raw, f"override {text!r}") if raw != "" else ""
    node: dict[str, Any] = {}
    cursor = node
    parts = key.split(".")
    for part in parts[:-1]:
        cursor[part] = {}
        cursor = cursor[part]
    cursor[parts[-1]] = value
    return node


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    try:
        data = dict(data)
        preset = data.get("frontend", {}).pop("preset", None) if isinstance(data.get("frontend"), dict) else None
        if preset is not None:
            if preset not in FRONTEND_PRESETS:
                raise ConfigError(f"frontend.preset: unknown preset {preset!r} (known: {sorted(FRONTEND_PRESETS)})")
            data["frontend"] = merge_dicts(FRONTEND_PRESETS[preset], data["frontend"])
        return _from_dict(Config, data, "").validate()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def recipe_data(path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """(plain data, source description) of a recipe file (None = defaults only) with dotted overrides merged in:
    the one recipe reader, shared by the training and separation configs."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        loaded = load_yaml(path.read_text(), str(path))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping at top level")
        data, source = loaded, str(path)
    for text in overrides:
        data = merge_dicts(data, parse_override(text))
    if overrides:
        source = f"{source} + overrides"  # once: an error names the key, which says which override it was
    return data, source


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- recipe YAML (optional: a path or a packaged recipe's name) <- dotted overrides. Errors name the
    file and the key."""
    if path is not None:
        from hear_sela.resources import resolve_recipe

        try:
            path = resolve_recipe(path)  # a file, or a packaged recipe by name ("demo", "fsd50k_sela")
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
    data, source = recipe_data(path, overrides)
    cfg = config_from_dict(data, source)
    marginals = cfg.sela.marginals
    if marginals not in NAMED_MARGINALS and not Path(marginals).is_file():  # checked here, not in a stored config
        raise ConfigError(f"{source}: sela.marginals={marginals!r}: no such file")
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-able dict (tuples become lists) for checkpoints and logs."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(asdict(cfg))


def frontend_from_dict(data: dict[str, Any], source: str = "<checkpoint>") -> FrontendConfig:
    try:
        frontend = _from_dict(FrontendConfig, data, "frontend")
        frontend.validate()
        return frontend
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
