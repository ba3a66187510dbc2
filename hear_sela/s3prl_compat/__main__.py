"""`python -m hear_sela.s3prl_compat run_downstream ARGS`: s3prl's run_downstream.py with hear_sela registered.

ARGS are run_downstream's own (-m, -u hear_sela, -k CKPT, -d TASK, -c CONFIG, -o OVERRIDES, -n NAME, --device ...).
`python -m hear_sela.s3prl_compat shims` lists the compatibility shims and which ones this stack needs.
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m hear_sela.s3prl_compat run_downstream [s3prl run_downstream.py arguments]
       python -m hear_sela.s3prl_compat shims"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("run_downstream", "shims"):
        print(USAGE, file=sys.stderr)
        return 2
    from hear_sela.s3prl_compat import SHIMS, apply_shims, needed_shims

    if argv[0] == "shims":
        needed = set(needed_shims())
        for shim in SHIMS:
            print(f"{'needed ' if shim.name in needed else 'not needed'}  {shim.name}: {shim.why}")
        return 0
    from hear_sela.s3prl_compat import prepare_hub

    prepare_hub()
    print(f"[hear_sela] s3prl compatibility shims applied: {apply_shims() or 'none'}", file=sys.stderr)
    from s3prl import run_downstream

    sys.argv = ["run_downstream.py", *argv[1:]]  # s3prl parses sys.argv itself
    run_downstream.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
