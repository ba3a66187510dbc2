"""Emergent classes vs reference annotations: metrics, baselines, reports, label export and plots.

- metrics.py   pure clustering metrics (single- and multi-label), majority vote, random baseline
- ontology.py  the vendored AudioSet ontology: labels -> top-level classes
- core.py      `analyze(AnalysisInputs, out_dir)`: tables, baselines, exports, plots, report.md
- report.py    per-cluster and per-label tables, Markdown
- plots.py     PNG plots (matplotlib Agg)
- sources.py   `inputs_from_checkpoint(...)`: label store, cache, references and embeddings of a checkpoint
- browse/      `hear-sela browse`: a static HTML site to see and hear the emergent classes of an analysed run
"""

from hear_sela.analysis.core import AnalysisInputs, AnalysisResult, analyze

__all__ = ["AnalysisInputs", "AnalysisResult", "analyze"]
