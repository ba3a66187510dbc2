"""Reference HEAR modules that need no training: floors for every comparison (`hear_sela.baselines.logmel`)."""
