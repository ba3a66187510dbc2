"""Files that ship beside the code -- the training recipes and the s3prl upstream -- in a checkout and in a wheel.

Their source stays at the repository root (`recipes/`, `upstream/hear_sela/`); `setup.py`'s build step copies them
into the built package under the names in `PACKAGED_COPIES`, so an installed wheel carries them. Lookup order: the
packaged copy (an installed wheel), then the repository root beside this package (a checkout, or an editable
install). This module imports nothing but the standard library: `setup.py` loads it to read `PACKAGED_COPIES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# package sub-folder (under hear_sela/) -> its source, relative to the repository root
PACKAGED_COPIES: dict[str, str] = {"recipes": "recipes", "s3prl_upstream": "upstream/hear_sela"}
RECIPE_SUFFIX = ".yaml"

_PACKAGE_DIR = Path(__file__).resolve().parent


def _candidates(copy: str) -> list[Path]:
    """Where the resource `copy` (a PACKAGED_COPIES key) may live, in lookup order."""
    found = [_PACKAGE_DIR / copy]
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file():  # a checkout of this project, not some site-packages folder
        found.append(root / PACKAGED_COPIES[copy])
    return found


def resource_dir(copy: str, marker: str) -> Path:
    """The first folder for resource `copy` that holds `marker`; FileNotFoundError naming where it looked."""
    places = _candidates(copy)
    for place in places:
        if (place / marker).exists():
            return place
    raise FileNotFoundError(f"hear_sela's {copy} not found (looked for {marker} in {', '.join(map(str, places))}); "
                            "reinstall hear_sela (pip install 'hear-sela @ git+...' or from a clone)")


def s3prl_upstream_dir() -> Path:
    """The s3prl upstream folder (upstream/hear_sela of the source tree, or its packaged copy)."""
    return resource_dir("s3prl_upstream", "hubconf.py")


def recipes_dir() -> Path:
    return resource_dir("recipes", f"demo{RECIPE_SUFFIX}")


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    path: Path
    reproduces: str  # the first sentence of the recipe's header comment


def recipe_summary(path: Path) -> str:
    """First sentence of the header comment (the setting the recipe reproduces); launch lines are not included."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.startswith("   ") or not text.strip():  # indented launch lines end the description
            break
        lines.append(text.strip())
    text = " ".join(lines)
    return re.split(r"(?<=\.)\s+(?=[A-Z(])", text, maxsplit=1)[0] if text else ""


def list_recipes() -> list[RecipeInfo]:
    folder = recipes_dir()
    return [RecipeInfo(p.stem, p, recipe_summary(p)) for p in sorted(folder.glob(f"*{RECIPE_SUFFIX}"))]


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path as given, else a packaged recipe by name (`demo`, `fsd50k_sela`, or
    `demo.yaml`). FileNotFoundError naming the packaged recipes otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.parent == Path(".") and path.suffix in ("", RECIPE_SUFFIX):
        try:
            folder = recipes_dir()
        except FileNotFoundError:
            folder = None
        if folder is not None and (folder / f"{path.stem}{RECIPE_SUFFIX}").is_file():
            return folder / f"{path.stem}{RECIPE_SUFFIX}"
    try:
        names = ", ".join(r.name for r in list_recipes())
    except FileNotFoundError:
        names = "none found"
    raise FileNotFoundError(f"recipe not found: {name_or_path} (not a file; packaged recipes: {names})")


S3PRL_CONFIGS = "configs"  # s3prl downstream configs vendored under the upstream folder


def s3prl_configs() -> dict[str, Path]:
    """The vendored s3prl downstream configs: name (`speech_commands`) -> file, in the checkout or the wheel."""
    folder = s3prl_upstream_dir() / S3PRL_CONFIGS
    return {p.stem: p for p in sorted(folder.glob(f"*{RECIPE_SUFFIX}"))}


def resolve_s3prl_config(name_or_path: str) -> Path:
    """run_downstream's `-c`: an existing file as given, else a vendored config by name (`speech_commands` or
    `speech_commands.yaml`), so one command works in a checkout and from a pip install. FileNotFoundError naming
    the vendored configs and their folder otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    configs = s3prl_configs()
    if path.parent == Path(".") and path.suffix in ("", RECIPE_SUFFIX) and path.stem in configs:
        return configs[path.stem]
    folder = s3prl_upstream_dir() / S3PRL_CONFIGS
    raise FileNotFoundError(f"-c {name_or_path}: not a file, nor a vendored config's name ({', '.join(configs)}; "
                            f"installed in {folder})")
