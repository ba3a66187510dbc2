"""hear_sela: self-labeling audio representation learning (SeLa) with a BYOL-A baseline."""

__version__ = "0.1.0"
