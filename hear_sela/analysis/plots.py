"""PNG plots of the analysis (matplotlib, Agg backend: no display needed).

Legend: C clips, K clusters, L reference labels, D embedding dimension.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

# Distinct colours for the largest categories of the 2-D map: tab10 without grey when few enough, else tab20 without
# its two greys plus two dark tones of tab20b (grey means "other": every further category, drawn light grey).
_GREYS = {"tab10": {7}, "tab20": {14, 15}}
_EXTRA = ("#393b79", "#8c6d31")
TOP_COLOURS = 20


def cluster_label_heatmap(counts: np.ndarray, sizes: np.ndarray, vocab: Sequence[str], path: Path,
                          top_clusters: int = 20, top_labels: int = 25, title: str = "") -> Path:
    """Precision heatmap (share of a cluster's clips carrying a label) for the largest clusters and the labels most
    common among them. counts (K, L) clips of cluster k carrying label l; sizes (K,) clips per cluster."""
    rows = [k for k in np.argsort(-sizes, kind="stable")[:top_clusters] if sizes[k] > 0]
    sub = counts[rows]  # (R, L)
    cols = [j for j in np.argsort(-sub.sum(axis=0), kind="stable")[:top_labels] if sub[:, j].sum() > 0]
    share = sub[:, cols] / np.maximum(sizes[rows][:, None], 1)  # (R, Lc)
    # columns in the order of the cluster each label dominates most, so a good clustering shows a diagonal
    order = np.lexsort((-share.max(axis=0), share.argmax(axis=0)))
    cols, share = [cols[i] for i in order], share[:, order]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * len(cols) + 2.5), max(3.0, 0.3 * len(rows) + 1.8)))
    im = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(float(share.max()), 1e-9))
    ax.set_xticks(range(len(cols)), [str(vocab[j])[:28] for j in cols], rotation=75, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{k} (n={int(sizes[k])})" for k in rows], fontsize=7)
    ax.set_xlabel("reference label")
    ax.set_ylabel("cluster (clips)")
    ax.set_title(title or "share of each cluster's clips carrying a label", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cluster_size_histogram(sizes: np.ndarray, path: Path, title: str = "") -> Path:
    """Clips per cluster over all K clusters (empty ones included). sizes (K,).

    Up to 40 clusters: one bar per cluster, largest first. More: a histogram whose bins are whole numbers of clips
    (each bin holds the integer sizes [a, a + w)), so no bin straddles an integer.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    empty = int((sizes == 0).sum())
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    if len(sizes) <= 40:
        ordered = np.sort(sizes)[::-1]
        ax.bar(np.arange(len(sizes)), ordered, width=0.8, color="#4477aa")
        ax.set_xlabel("clusters, largest first")
        ax.set_ylabel("clips")
        ax.set_xticks([])
    else:
        width = max(1, int(np.ceil((int(sizes.max()) + 1) / 40)))
        edges = np.arange(0, int(sizes.max()) + width + 1, width) - 0.5  # integer sizes sit inside bins
        ax.hist(sizes, bins=edges, color="#4477aa", edgecolor="white", linewidth=0.5)
        ax.set_xlabel("clips per cluster" + (f" (bins of {width})" if width > 1 else ""))
        ax.set_ylabel("clusters")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(title or f"cluster sizes (K={len(sizes)}, {empty} empty, median {np.median(sizes):g} clips)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def project_2d(embeddings: np.ndarray, seed: int = 0, max_tsne: int = 5000) -> tuple[np.ndarray, str]:
    """(C, D) -> ((C, 2), method): UMAP if installed, else t-SNE up to `max_tsne` points, else PCA."""
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(embeddings, dtype=np.float64))
    if len(x) < 5:
        from sklearn.decomposition import PCA

        return PCA(n_components=2).fit_transform(x) if len(x) > 2 else np.zeros((len(x), 2)), "PCA"
    if importlib.util.find_spec("umap") is not None:
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x), "UMAP"
    from sklearn.decomposition import PCA

    # PCA to 50 dims first: t-SNE's usual preprocessing, and it keeps t-SNE fast for wide embeddings
    x50 = PCA(n_components=min(50, x.shape[1], len(x))).fit_transform(x)
    if len(x) <= max_tsne:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x50), "t-SNE"
    return x50[:, :2], "PCA"


def _palette(n: int) -> list[tuple[float, ...]]:
    """n <= TOP_COLOURS distinct, non-grey colours; from tab20 its dark tones first, so the largest categories
    never get a pale colour next to its own darker twin."""
    name, size = ("tab10", 10) if n <= 9 else ("tab20", 20)
    cmap = plt.get_cmap(name)
    order = range(size) if name == "tab10" else [*range(0, size, 2), *range(1, size, 2)]
    colours = [cmap(i) for i in order if i not in _GREYS[name]] + [matplotlib.colors.to_rgba(c) for c in _EXTRA]
    return colours[:n]


def palette_hex(n: int) -> list[str]:
    """The map's n <= TOP_COLOURS category colours as '#rrggbb' (the HTML browser draws with the same ones)."""
    return [matplotlib.colors.to_hex(c) for c in _palette(n)]


def _categorical(ax, xy: np.ndarray, cats: Sequence[str], title: str) -> None:
    cats = np.asarray(cats, dtype=object).astype(str)
    names, counts = np.unique(cats, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown = list(names[order][:TOP_COLOURS])
    rest = ~np.isin(cats, shown)
    if rest.any():  # underneath, small: context, not a category
        n_rest = len(names) - len(shown)
        ax.scatter(xy[rest, 0], xy[rest, 1], s=4, c="#d0d0d0", linewidths=0,
                   label=f"other: {n_rest} smaller ({int(rest.sum())} clips)")
    for colour, name, count in zip(_palette(len(shown)), shown, counts[order][:len(shown)], strict=True):
        sel = cats == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=7, color=colour, linewidths=0, label=f"{name[:24]} ({count})")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    # beside the panel, never over the points
    ax.legend(fontsize=6, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False, handletextpad=0.2)


def embedding_map(xy: np.ndarray, clusters: np.ndarray, reference: Sequence[str], method: str, path: Path,
                  reference_name: str = "reference label") -> Path:
    """Two panels of the same 2-D map (C, 2): coloured by cluster and by (first) reference label (or, without
    reference labels, by what `reference_name` names, e.g. another head's cluster)."""
    fig, axes = plt.subplots(1, 2, figsize=(13.0, 5.0), layout="constrained")
    n_clusters, n_labels = len(np.unique(clusters)), len(set(reference))
    _categorical(axes[0], xy, [f"cluster {c}" for c in clusters], f"{method} of clip embeddings: by cluster "
                 f"({min(n_clusters, TOP_COLOURS)} largest of {n_clusters} in colour)")
    _categorical(axes[1], xy, reference, f"by {reference_name} ({min(n_labels, TOP_COLOURS)} most common of "
                 f"{n_labels} in colour)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
