"""Datasets (synth, folder, fsd50k, records), the feature cache (`cache` reads, `cache_build` builds), the segment
dataset (`segments`), and `prepare` (config -> clips -> cache). Import the submodule you need: this package imports
nothing, so reading a cache never pulls in the builder's DataLoader and tqdm."""
