"""Objectives the training loop optimises: `base` (the interface, the scheduled-work hook, RunContext), `sela`
(heads, label store, loss, label-update schedule), `label_update` (the SeLa label update), `byol` (BYOL-A)."""
