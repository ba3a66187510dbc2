"""`build_site(BrowseData, out_dir)`: the static emergent-class browser of one analysed run.

Layout of the site (opens from the file system; no server, no network):
    index.html              heads, the selected head's clusters (sortable, filterable, paged), the 2-D map
    static/browse.{js,css}  the site's script and style (hear_sela/assets)
    data/site.js            run summary, heads' scores, the map's points; data/head<h>.js per head, loaded on demand
    h<h>/c<k>.html          a page per non-empty cluster of each head; h<h>/mean/c<k>.webp its mean log-mel
    media/NNNN/s<i>.opus    audio excerpt and log-mel thumbnail (.webp) of cache segment i: one segment per clip
                            shown (`select.shared_segment`), written once, linked from every head's pages

Legend: H heads, C clips, S segments, K clusters, L reference labels.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from hear_sela.analysis import plots
from hear_sela.analysis.browse import media, pages
from hear_sela.analysis.browse import select as sel
from hear_sela.analysis.browse.data import BrowseData
from hear_sela.analysis.metrics import multi_hot

log = logging.getLogger("hear_sela.analysis")

GREY = "#c8c8c8"
SCORE_COLUMNS = [("nmi", "NMI", "normalised mutual information with the labels (one label per clip)"),
                 ("ami", "AMI", "adjusted mutual information: 0 = chance"),
                 ("tag_mi", "tag MI", "mutual information with the tags / log2 K"),
                 ("ml_purity", "purity", "share of clips carrying their cluster's majority label")]


@dataclass(frozen=True)
class BrowseOptions:
    central: int = 8  # member clips closest to the centre per cluster page
    border: int = 2  # borderline members per cluster page
    nearest: int = 5  # nearest clusters listed
    top_labels: int = 8  # reference labels listed
    audio_format: str = "opus"  # media.AUDIO_FORMATS
    max_seconds: float = 5.0  # excerpt length cap (a segment is played whole up to this)
    page_size: int = 50  # cluster rows per page of the index table
    workers: int = 1  # processes decoding and encoding audio


@dataclass
class HeadPlan:
    """What one head's pages show. Per cluster k: central[k], border[k] (clip indices); per clip: own distance,
    nearest other cluster and its distance."""

    stats: sel.ClusterStats
    central: dict[int, np.ndarray]
    border: dict[int, np.ndarray]
    own: np.ndarray  # (C,)
    other: np.ndarray  # (C,)
    other_cluster: np.ndarray  # (C,)
    nearest: np.ndarray  # (K, n) ids, -1 padded
    nearest_distance: np.ndarray  # (K, n)


@dataclass
class SiteResult:
    index: Path
    pages: int
    excerpts: int
    bytes: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def plan_head(embeddings: np.ndarray, labels: np.ndarray, confidence: np.ndarray, y: np.ndarray, n_clusters: int,
              opts: BrowseOptions) -> HeadPlan:
    """Choose every cluster page's clips and nearest clusters for one head: embeddings (C, D) reduced clip
    embeddings, labels and confidence (C,) the head's clip votes, y (C, L) reference labels."""
    k = n_clusters
    centres, _ = sel.cluster_centres(embeddings, labels, k)  # (K, D)
    own, other, other_k = sel.centre_distances(embeddings, labels, centres)
    central, border = {}, {}
    for c, members in enumerate(sel.members_by_cluster(labels, k)):
        if len(members):
            central[c], border[c] = sel.choose_members(members, own, other, opts.central, opts.border)
    near, near_d = sel.nearest_clusters(centres, opts.nearest)
    return HeadPlan(sel.cluster_stats(labels, confidence, y, k), central, border, own, other, other_k, near, near_d)


def shown_clips(plans: list[HeadPlan]) -> np.ndarray:
    """The distinct clips any head's pages show (central or borderline), sorted: one excerpt and thumbnail each."""
    shown = [members for p in plans for d in (p.central, p.border) for members in d.values()]
    return np.unique(np.concatenate(shown)) if shown else np.zeros(0, dtype=np.int64)


def _top(plan: HeadPlan, k: int, vocab: list[str]) -> str:
    top = sel.top_labels(plan.stats.counts[k], int(plan.stats.labelled[k]), vocab, 1)
    return f"{top[0][0]} ({top[0][2]:.2f})" if top else ""


def _clip_item(data: BrowseData, plan: HeadPlan, clip: int, segment: np.ndarray, audio: dict[int, str],
               thumbs: dict[int, str], border: bool, max_seconds: float) -> pages.ClipItem:
    s = int(segment[clip])
    sr = int(data.cache.frontend.sample_rate)
    seg_seconds = float(data.cache.manifest["segment"]["segment_seconds"])
    a, b = media.excerpt_span(float(data.cache.segment_start[s]), seg_seconds, max_seconds,
                              int(data.cache.manifest["clips"][clip]["samples"]), sr)
    return pages.ClipItem(data.clip_ids[clip], data.clip_refs[clip], a / sr, b / sr, float(plan.own[clip]), audio[s],
                          thumbs[s], int(plan.other_cluster[clip]) if border else -1,
                          float(plan.other[clip]) if border else float("nan"))


def _write_data_js(path: Path, prefix: str, payload: object, suffix: str = ";") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prefix + json.dumps(payload, separators=(",", ":"), allow_nan=False) + suffix + "\n")


def _finite(x: float, digits: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), digits)


def site_payload(data: BrowseData, title: str, opts: BrowseOptions) -> dict:
    """data/site.js: what the index needs before any head is loaded."""
    scores = data.metrics[data.metrics["reference"] == "labels"].set_index("method")
    cols = [c for c in SCORE_COLUMNS if c[0] in scores.columns and scores[c[0]].notna().any()]
    head_scores = []
    for h in range(data.n_heads):
        row = scores.loc[f"SeLa head {h}"] if f"SeLa head {h}" in scores.index else None
        head_scores.append({"head": h, "nonempty": int(len(np.unique(data.clip_labels[h]))),
                            **{c: (None if row is None else _finite(float(row[c]))) for c, _, _ in cols}})
    xy = None
    if data.xy is not None:
        lo, span = data.xy.min(axis=0), np.ptp(data.xy, axis=0)
        xy = np.round((data.xy - lo) / np.where(span > 0, span, 1.0), 4).reshape(-1).tolist()
    m = data.summary.get("map", {})
    return {"title": title, "heads": data.n_heads, "clusters": data.n_clusters, "report_head":
            int(data.summary.get("report_head", 0)), "head_scores": head_scores,
            "score_columns": [list(c) for c in cols], "page_size": opts.page_size, "xy": xy, "clip_ids": data.clip_ids,
            "palette": plots.palette_hex(min(plots.TOP_COLOURS, data.n_clusters)), "grey": GREY,
            "map_caption": f"{m.get('method', '')} of the {m.get('embedding', '')} clip embeddings: each dot a clip, "
                           "coloured by the selected head's cluster."}


def head_payload(plan: HeadPlan, labels: np.ndarray, vocab: list[str]) -> dict:
    """data/head<h>.js: one row per non-empty cluster (id, clips, labelled, share, entropy, confidence, top label,
    top-3 labels for the filter) and the cluster of every clip (the map's colours)."""
    st = plan.stats
    rows = []
    for k in np.flatnonzero(st.sizes):
        tops = sel.top_labels(st.counts[k], int(st.labelled[k]), vocab, 3)
        rows.append([int(k), int(st.sizes[k]), int(st.labelled[k]), _finite(st.purity[k]), _finite(st.entropy[k]),
                     _finite(st.confidence[k]), tops[0][0] if tops else "", [t[0] for t in tops]])
    return {"clusters": rows, "clip": labels.astype(int).tolist()}


def copy_static(out: Path) -> None:
    (out / "static").mkdir(parents=True, exist_ok=True)
    for name in ("browse.js", "browse.css"):
        (out / "static" / name).write_text(resources.files("hear_sela.assets").joinpath(name).read_text("utf-8"))


def build_site(data: BrowseData, out_dir: str | Path, opts: BrowseOptions = BrowseOptions(),
               progress: bool = False) -> SiteResult:
    """Write the browser of `data` into `out_dir` (see the module docstring); returns what it wrote and how long
    each stage took."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y, vocab = multi_hot(data.clip_refs)  # (C, L)
    plans = [plan_head(data.embeddings, data.clip_labels[h], data.clip_conf[h], y, data.n_clusters, opts)
             for h in range(data.n_heads)]
    timings["select"] = time.perf_counter() - t0

    t = time.perf_counter()
    segment = sel.shared_segment(data.segment_labels, data.cache.segment_clip, data.clip_labels)  # (C,)
    wanted = segment[shown_clips(plans)]  # one excerpt and thumbnail per clip shown, whichever heads show it
    audio = media.write_excerpts(data.cache, wanted, out, opts.audio_format, opts.max_seconds, progress,
                                 opts.workers)
    timings["audio"] = time.perf_counter() - t
    t = time.perf_counter()
    lo, hi = media.mel_range(data.cache.features)
    thumbs = media.write_thumbnails(data.cache, wanted, out, lo, hi)
    means = media.cluster_mean_mels(data.cache.features, data.segment_labels, data.n_clusters)  # (H, K, F, T)
    mean_names = media.write_mean_mels(means, out, {h: list(p.central) for h, p in enumerate(plans)})
    timings["images"] = time.perf_counter() - t

    t = time.perf_counter()
    source = str(data.summary.get("source", data.folder))
    run, _, how = source.partition(" (")  # "runs/NAME/final.pt (label store, 20 updates)"
    short = Path(*Path(run).parts[-2:])  # runs/NAME/final.pt -> NAME/final.pt: no machine's folders on the page
    title = f"Emergent classes of {short}"
    subtitle = (f"{short}{' (' + how if how else ''}: {data.n_heads} heads x K={data.n_clusters} clusters, "
                f"{len(data.clip_ids)} clips, {len(data.cache)} segments. Built by hear-sela browse.")
    copy_static(out)
    (out / "index.html").write_text(pages.index_page(title, subtitle))
    _write_data_js(out / "data" / "site.js", "window.SITE = ", site_payload(data, title, opts))
    seg_seconds = float(data.cache.manifest["segment"]["segment_seconds"])
    thumb_size = (int(data.cache.features.shape[2]), int(data.cache.features.shape[1]))  # (T, F) pixels
    n_pages = 0
    for h, plan in enumerate(plans):
        _write_data_js(out / "data" / f"head{h}.js", f"SITE_HEAD({h}, ", head_payload(plan, data.clip_labels[h],
                                                                                       vocab), ");")
        nonempty = sorted(plan.central)
        seg_counts = np.bincount(data.segment_labels[h], minlength=data.n_clusters)
        for i, k in enumerate(nonempty):
            st = plan.stats
            nearest = [(int(j), float(d), int(st.sizes[j]), _top(plan, int(j), vocab))
                       for j, d in zip(plan.nearest[k], plan.nearest_distance[k]) if j >= 0]
            page = pages.ClusterPage(
                head=h, cluster=k, size=int(st.sizes[k]), labelled=int(st.labelled[k]), segments=int(seg_counts[k]),
                purity=float(st.purity[k]), entropy=float(st.entropy[k]), confidence=float(st.confidence[k]),
                top_labels=sel.top_labels(st.counts[k], int(st.labelled[k]), vocab, opts.top_labels),
                mean_mel=mean_names[h, k], segment_seconds=seg_seconds, thumb_size=thumb_size,
                central=[_clip_item(data, plan, c, segment, audio, thumbs, False, opts.max_seconds)
                         for c in plan.central[k]],
                border=[_clip_item(data, plan, c, segment, audio, thumbs, True, opts.max_seconds)
                        for c in plan.border[k]],
                nearest=nearest, prev=nonempty[i - 1] if i else None,
                next=nonempty[i + 1] if i + 1 < len(nonempty) else None)
            (out / pages.cluster_path(h, k)).write_text(pages.cluster_page(page, title))
            n_pages += 1
    timings["pages"] = time.perf_counter() - t
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return SiteResult(out / "index.html", n_pages, len(audio), size, time.perf_counter() - t0, timings)
