"""Module specs of `hear-sela evaluate`: `[ALIAS=]MODULE[:CKPT]`, `--model-options ALIAS=JSON`, the `untrained:`
spec (a run's own initialisation, the floor it must beat), the check that heareval could import each module, and
the aliases and objectives the comparison's columns carry."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hear_sela.config import Config, ConfigError

log = logging.getLogger("hear_sela.evaluate")


@dataclass(frozen=True)
class ModuleSpec:
    """One column of the comparison: an importable HEAR module and an optional weights file."""

    alias: str  # column name and embeddings folder name
    module: str
    checkpoint: str | None = None
    objective: str | None = None  # sela | byol | None (for the SeLa - BYOL-A column)
    options: str | None = None  # heareval's --model-options: a JSON object of load_model keywords, canonical form


UNTRAINED = "untrained"  # `untrained:CKPT_OR_RECIPE`: the run's own initialisation, the floor it must beat


def parse_module_spec(text: str) -> ModuleSpec:
    """`[ALIAS=]MODULE[:CKPT]` -> ModuleSpec (alias and objective filled in later by `resolve_specs`).
    `untrained:CKPT_OR_RECIPE` is hear_sela on the untrained initialisation of that run (`untrained_export`)."""
    alias = None
    if "=" in text.split(":", 1)[0]:
        alias, text = text.split("=", 1)
    module, _, ckpt = text.partition(":")
    if module == UNTRAINED:
        if not ckpt:
            raise ValueError(f"--module {text!r}: want untrained:CHECKPOINT (or an export, or a recipe)")
        return ModuleSpec(alias=alias or f"{UNTRAINED}:{Path(ckpt).stem}", module=UNTRAINED, checkpoint=ckpt)
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
        raise ValueError(f"--module {text!r}: {module!r} is not an importable module name")
    if ckpt and not Path(ckpt).exists():
        raise FileNotFoundError(f"--module {text!r}: checkpoint {ckpt} does not exist")
    return ModuleSpec(alias=alias or "", module=module, checkpoint=ckpt or None)


def parse_model_options(text: str) -> tuple[str, str]:
    """`ALIAS=JSON` (`--model-options`) -> (alias, the JSON object in canonical form: sorted keys, no spaces)."""
    alias, sep, raw = text.partition("=")
    try:
        value = json.loads(raw) if sep and alias else None
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-options {text!r}: not JSON after ALIAS= ({e.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"--model-options {text!r}: want ALIAS='{{\"key\": value, ...}}' (a JSON object)")
    return alias, json.dumps(value, sort_keys=True, separators=(",", ":"))


def with_model_options(specs: Sequence[ModuleSpec], options: Sequence[str]) -> list[ModuleSpec]:
    """Attach each `ALIAS=JSON` to the spec of that alias (named with ALIAS=MODULE); an unknown alias is an error."""
    by_alias = dict(parse_model_options(o) for o in options)
    unknown = sorted(set(by_alias) - {s.alias for s in specs})
    if unknown:
        raise ValueError(f"--model-options for {unknown}: no --module of that alias (name it ALIAS=MODULE)")
    return [replace(s, options=by_alias.get(s.alias, s.options)) for s in specs]


def untrained_export(spec: ModuleSpec, folder: Path) -> ModuleSpec:
    """An `untrained:` spec made concrete: an export of the run's initialisation (same config and seed, so the same
    encoder, frontend and normalisation statistics, random weights) written into `folder`, evaluated as hear_sela.
    A recipe (a .yaml path or a packaged recipe's name) takes its statistics from its feature cache. Other specs
    pass through."""
    if spec.module != UNTRAINED:
        return spec
    from hear_sela.checkpoint import export_untrained, write_untrained_export

    src = str(spec.checkpoint)
    out = folder / f"{slug(spec.alias)}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    if Path(src).suffix in (".yaml", ".yml") or not Path(src).exists():
        write_untrained_export(_recipe_with_statistics(src), out)
    else:
        export_untrained(src, out)
    return replace(spec, module="hear_sela", checkpoint=str(out))


def _recipe_with_statistics(recipe: str) -> Config:
    """A recipe's config with its feature cache's normalisation statistics (what training would use)."""
    from hear_sela.config import load_config
    from hear_sela.data.cache import MANIFEST, FeatureCache
    from hear_sela.data.prepare import cache_dir_of

    cfg = load_config(recipe)
    cache_dir = cache_dir_of(cfg)
    if not (cache_dir / MANIFEST).is_file():
        raise ConfigError(f"untrained:{recipe}: no feature cache at {cache_dir} for its normalisation statistics; "
                          f"build it first (hear-sela prepare {recipe}) or give a checkpoint of the run")
    return replace(cfg, frontend=FeatureCache.open(cache_dir).frontend)


# Imports each module in a fresh interpreter and prints, per module, what stops heareval's embeddings runner from
# using it (it imports the module and calls its load_model); an empty line for one that works.
_IMPORT_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        problem = "" if hasattr(importlib.import_module(name), "load_model") else "no load_model: not a HEAR module"
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    print(problem.replace(chr(10), " "))
"""


def check_importable(modules: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Raise ValueError naming every module of `modules` that heareval's runners could not load, before any work.

    The probe runs as the runners do: this interpreter, `env` (default: this process's), and a working folder
    other than the current one (the runners run in OUT), so a module found only through the current folder fails
    here as it would there."""
    import tempfile

    names = list(dict.fromkeys(modules))
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *names], env=env, cwd=cwd, capture_output=True,
                              text=True, check=False)
    problems = proc.stdout.splitlines()
    if proc.returncode != 0 or len(problems) != len(names):
        raise ValueError(f"could not check the --module names {names}: {proc.stderr.strip()[-500:]}")
    bad = [f"{name} ({problem})" for name, problem in zip(names, problems) if problem]
    if bad:
        raise ValueError(f"--module: {'; '.join(bad)}. Each module must import in {sys.executable} (pip install "
                         "it, or put its folder on PYTHONPATH); hear_sela's own: hear_sela, hear_sela.baselines.logmel")


def slug(text: str) -> str:
    """A filesystem-safe form of an alias (folder and state-file key)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "module"


def _objective(spec: ModuleSpec) -> str | None:
    """sela / byol from a hear_sela checkpoint's stored config, else from the alias; None if unknown."""
    if spec.checkpoint and spec.module.split(".")[0] == "hear_sela":
        from hear_sela.checkpoint import CheckpointError, load_encoder_bundle

        try:
            return load_encoder_bundle(spec.checkpoint).objective
        except CheckpointError as e:
            log.warning("cannot read the objective of %s: %s", spec.checkpoint, e)
    name = spec.alias.lower()
    return "byol" if "byol" in name else "sela" if "sela" in name else None


def resolve_specs(specs: Sequence[ModuleSpec]) -> list[ModuleSpec]:
    """Fill in default aliases (unique, filesystem-safe) and objectives."""

    def default(s: ModuleSpec, level: int) -> str:
        if s.alias:
            return s.alias
        if not s.checkpoint:
            return s.module
        p = Path(s.checkpoint)
        return f"{s.module}:{'/'.join([*p.parent.parts[-level:], p.stem]) if level else p.stem}"

    for level in range(4):
        aliases = [default(s, level) for s in specs]
        if len(set(aliases)) == len(aliases):
            break
    else:
        raise ValueError(f"module specs {[s.alias or s.module for s in specs]} are not distinguishable: "
                         "name them with ALIAS=MODULE[:CKPT]")
    if len({slug(a) for a in aliases}) != len(aliases):
        raise ValueError(f"aliases {aliases} collide once made filesystem-safe; choose distinct ALIAS= names")
    named = [replace(s, alias=alias) for s, alias in zip(specs, aliases)]
    return [replace(s, objective=s.objective or _objective(s)) for s in named]
