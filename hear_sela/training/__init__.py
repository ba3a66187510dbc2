"""Training: the loop (`loop.train`), its batch order (`data`), checkpoint state (`state`, the one owner of the
training checkpoint layout), the `labels` command's relabelling (`relabel`), optimiser and learning-rate schedule."""
