"""Use hear_sela's s3prl upstream (upstream/hear_sela) from an installed s3prl, without copying files into s3prl.

- `prepare_hub()`: apply the needed compatibility shims (`shims.py`), import s3prl's real hub, and add our entries
  (`hear_sela`, `hear_sela_local`) to it, so `-u hear_sela` and `s3prl.nn.S3PRLUpstream("hear_sela")` find them.
- `python -m hear_sela.s3prl_compat run_downstream ARGS`: the above, then s3prl's own run_downstream main with ARGS.
- `s3prl_upstream(ckpt)`: `s3prl.nn.S3PRLUpstream` over our upstream, with that API's frame-count rule.
Import this module before s3prl (see shims.py: tensorflow, which s3prl imports, must not load before triton).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import types
from pathlib import Path
from typing import Any

from hear_sela.resources import s3prl_upstream_dir
from hear_sela.s3prl_compat.shims import SHIMS, apply_shims, needed_shims

__all__ = ["SHIMS", "apply_shims", "import_hubconf", "needed_shims", "prepare_hub", "register_upstream",
           "s3prl_upstream", "upstream_dir"]

log = logging.getLogger(__name__)
UPSTREAM_ENV = "HEAR_SELA_S3PRL_UPSTREAM"
_PACKAGE = "hear_sela_s3prl_upstream"  # the name upstream/hear_sela is imported under (it uses relative imports)


def upstream_dir() -> Path:
    """The folder named by $HEAR_SELA_S3PRL_UPSTREAM, else upstream/hear_sela (its copy in an installed wheel, or
    the source tree's; see hear_sela/resources.py)."""
    env = os.environ.get(UPSTREAM_ENV)
    if not env:
        return s3prl_upstream_dir()
    path = Path(env)
    if not (path / "hubconf.py").is_file():
        raise FileNotFoundError(f"no s3prl upstream at {path} (hubconf.py missing): set {UPSTREAM_ENV} to a copy of "
                                "upstream/hear_sela, or unset it to use the installed one")
    return path


def import_hubconf() -> types.ModuleType:
    """upstream/hear_sela/hubconf.py, imported as the package `hear_sela_s3prl_upstream` (expert: `.expert`)."""
    if f"{_PACKAGE}.hubconf" in sys.modules:
        return sys.modules[f"{_PACKAGE}.hubconf"]
    folder = upstream_dir()
    spec = importlib.util.spec_from_file_location(_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{_PACKAGE}.hubconf")


def register_upstream(hub: types.ModuleType) -> list[str]:
    """Add our hubconf's public entries to `hub`; an entry of that name already there (e.g. an in-tree copy of
    upstream/hear_sela) is left alone, with a warning. Returns the names now served by our entries."""
    hubconf = import_hubconf()
    served = []
    for name, entry in vars(hubconf).items():
        if name.startswith("_") or not isinstance(entry, types.FunctionType) or entry.__module__ != hubconf.__name__:
            continue  # s3prl's rule (public callables), less what hubconf imports
        current = getattr(hub, name, None)
        if current is None:
            setattr(hub, name, entry)
        elif current is not entry:
            log.warning("s3prl.hub already has %r (%s); keeping it", name, getattr(current, "__module__", "?"))
            continue
        served.append(name)
    return served


def prepare_hub() -> types.ModuleType:
    """Shims, s3prl's hub, our entries in it; returns `s3prl.hub`."""
    apply_shims()
    try:
        import s3prl.hub
    except ModuleNotFoundError as e:
        if e.name != "s3prl":
            raise
        raise ModuleNotFoundError("s3prl is not installed: pip install 'hear-sela[s3prl]'", name="s3prl") from None

    register_upstream(s3prl.hub)
    return s3prl.hub


def s3prl_upstream(ckpt: str | None = None, **options: Any):
    """`s3prl.nn.S3PRLUpstream("hear_sela", ckpt)`: its forward(wavs (B, S), wavs_len (B,)) -> (hidden states
    [(B, T, D)], lengths [(B,)]). Frames per clip follow that API's rule ceil(len / rate); None = default weights."""
    prepare_hub()
    from s3prl.nn import S3PRLUpstream

    return S3PRLUpstream("hear_sela", path_or_url=ckpt, extra_conf={"length_rule": "ceil", **options})
