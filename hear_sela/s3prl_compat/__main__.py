"""`python -m hear_sela.s3prl_compat run_downstream ARGS`: s3prl's run_downstream.py with hear_sela registered.

ARGS are run_downstream's own (-m, -u hear_sela, -k CKPT, -d TASK, -c CONFIG, -o OVERRIDES, -n NAME, --device ...);
`-c` also takes a vendored config's name (`-c speech_commands`), which works from a pip install too.
`python -m hear_sela.s3prl_compat configs` lists the vendored downstream configs and where they are installed;
`python -m hear_sela.s3prl_compat shims` lists the compatibility shims and which ones this stack needs.

s3prl reads its checkpoints (-e, -i) with a bare `torch.load`, which torch >= 2.6 runs with `weights_only=True`
unless TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set; with it, a crafted checkpoint would run its code. This launcher
therefore drops that variable from its own process before s3prl loads anything, and turns torch's refusal of a
file holding more than weights into one line naming it.
"""

from __future__ import annotations

import os
import pickle
import sys

USAGE = """usage: python -m hear_sela.s3prl_compat run_downstream [s3prl run_downstream.py arguments]
       python -m hear_sela.s3prl_compat configs
       python -m hear_sela.s3prl_compat shims"""
CONFIG_FLAGS = ("-c", "--config")


def with_config_paths(args: list[str]) -> list[str]:
    """run_downstream arguments with `-c NAME` / `--config[=]NAME` turned into the vendored config's path
    (`resources.resolve_s3prl_config`); FileNotFoundError naming the vendored configs for neither file nor name."""
    from hear_sela.resources import resolve_s3prl_config

    out = list(args)
    for i, arg in enumerate(out):
        if i > 0 and out[i - 1] in CONFIG_FLAGS:
            out[i] = str(resolve_s3prl_config(arg))
        elif arg.startswith("--config="):
            out[i] = f"--config={resolve_s3prl_config(arg.partition('=')[2])}"
    return out


WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def keep_weights_only_loading() -> bool:
    """Remove TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD from this process (torch reads it at every load); True if it was set."""
    return os.environ.pop(WEIGHTS_ONLY_ENV, None) is not None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("run_downstream", "configs", "shims"):
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "configs":
        from hear_sela.resources import s3prl_configs

        for name, path in s3prl_configs().items():
            print(f"{name}  {path}")
        return 0
    try:
        args = with_config_paths(argv[1:])
    except FileNotFoundError as e:  # a mistyped -c: one line before s3prl (and torch) is imported
        print(f"hear_sela.s3prl_compat: error: {e}", file=sys.stderr)
        return 2
    from hear_sela.s3prl_compat import SHIMS, apply_shims, needed_shims

    if argv[0] == "shims":
        needed = set(needed_shims())
        for shim in SHIMS:
            print(f"{'needed ' if shim.name in needed else 'not needed'}  {shim.name}: {shim.why}")
        return 0
    if keep_weights_only_loading():
        print(f"[hear_sela] ignoring {WEIGHTS_ONLY_ENV}: s3prl's checkpoints load with weights_only=True here",
              file=sys.stderr)
    from hear_sela.s3prl_compat import prepare_hub

    prepare_hub()
    print(f"[hear_sela] s3prl compatibility shims applied: {apply_shims() or 'none'}", file=sys.stderr)
    from s3prl import run_downstream

    sys.argv = ["run_downstream.py", *args]  # s3prl parses sys.argv itself
    try:
        run_downstream.main()
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"hear_sela.s3prl_compat: error: refused to load a checkpoint that holds more than weights "
              f"(arguments: {' '.join(args)}): {first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
