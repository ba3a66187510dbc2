"""hear-sela recipes [--paths]: the packaged recipes, usable by name (`hear-sela train fsd50k_sela`), with the
setting each reproduces (the first sentence of its header comment)."""

from __future__ import annotations

import argparse
import textwrap

from hear_sela.resources import list_recipes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", action="store_true", help="also print where each recipe file is")


def main(args: argparse.Namespace) -> int:
    recipes = list_recipes()
    width = max(len(r.name) for r in recipes)
    for r in recipes:
        lines = textwrap.wrap(r.reproduces or "(no header comment)", 110 - width)
        print(f"{r.name:<{width}}  {lines[0]}")
        for line in lines[1:]:
            print(f"{'':<{width}}  {line}")
        if args.paths:
            print(f"{'':<{width}}  {r.path}")
    return 0
