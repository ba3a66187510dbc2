"""Bootstrapped single-channel source separation from unsupervised spatial clustering (Seetharaman, Wichern,
Le Roux, Pardo, ICASSP 2019), as a self-contained recipe: mixtures -> teacher (spatial GMM + confidence) -> student
(weighted deep clustering) -> metrics and the paper's Table 1 (experiment). Spec: shared notes/seed003_selavi.md
Part 1. Recipes: recipes/separation/cpu.yaml, recipes/separation/paper.yaml.
"""
