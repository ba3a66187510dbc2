"""`hear-sela evaluate`: heareval over several HEAR modules and tasks, and the comparison of their scores.

- specs: `--module` / `--model-options` parsing, the `untrained:` spec, the import check, aliases and objectives.
- runner: heareval's two runners per module and task, resumable and failure-isolated (evaluate_state.json).
- tables: official scores read back, the comparison table, comparison.csv and comparison.md.
- plots: comparison.png.
"""
