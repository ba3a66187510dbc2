"""HTML of the browser's pages, as strings: no template engine, every value escaped here. The index is a skeleton
that static/browse.js fills from data/*.js (script files, not JSON: a page opened from the file system may not fetch
files); cluster pages are complete static HTML.

Legend: K clusters, L reference labels.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

HOW_TO_READ = """
<p>A SeLa run trains several <b>heads</b>, each an independent clustering of the same clips into K classes that
nobody named. A clip belongs to the cluster most of its segments were put in (majority vote per head).</p>
<ul>
<li><b>clips</b>: the cluster's size. <b>top label</b> and <b>share</b>: the reference label carried by most of the
cluster's labelled clips and the share of them that carry it (1.00: all; the reference labels were never used in
training). <b>entropy</b>: of the cluster's label distribution, in bits (0: one label only).
<b>confidence</b>: the head's mean confidence in its clips.</li>
<li>The heads table scores each head against the reference labels (NMI, AMI for one label per clip; tag MI,
multi-label purity for several); 0 means no better than chance for AMI.</li>
<li>The <b>map</b> places each clip by its embedding (2-D projection): clips close together sound alike to the
encoder. Colours are the selected head's clusters (the 20 largest; the rest grey). Point at a dot to see its
cluster, click to open it; pointing at a table row highlights that cluster.</li>
<li>A cluster page plays the clips closest to the cluster's centre (its typical members) and a few borderline ones
(members nearly as close to another cluster), each with its log-mel (time across, low frequencies at the
bottom).</li>
</ul>
<p class="keys">Keys: <kbd>/</kbd> filter, <kbd>[</kbd> <kbd>]</kbd> previous/next page of the table,
<kbd>0</kbd>-<kbd>9</kbd> choose a head; on a cluster page <kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous/next
cluster, <kbd>u</kbd> back here, <kbd>1</kbd>-<kbd>9</kbd> play clip 1-9.</p>
"""

ERROR_SENTINEL = ("<script>window.addEventListener('error',function(e){document.documentElement.dataset.jsError="
                  "String(e.message||e);});</script>")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _head(title: str, css: str) -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f'<link rel="stylesheet" href="{css}">\n{ERROR_SENTINEL}\n</head>\n')


def index_page(title: str, subtitle: str) -> str:
    """The index skeleton: heads table, cluster table with filters and pages, the map; browse.js fills them."""
    return (_head(title, "static/browse.css") +
            '<body data-page="index">\n<header>\n'
            f'<h1>{esc(title)}</h1>\n<p class="sub">{esc(subtitle)}</p>\n</header>\n<main>\n'
            f'<details class="howto" open>\n<summary>How to read this</summary>\n{HOW_TO_READ}</details>\n'
            '<section aria-labelledby="heads-h">\n<h2 id="heads-h">Heads</h2>\n'
            '<table id="heads" class="data"></table>\n</section>\n'
            '<div class="split">\n<section aria-labelledby="clusters-h" class="clusters">\n'
            '<h2 id="clusters-h">Clusters of head <span id="head-no"></span></h2>\n'
            '<form id="filters" class="filters" onsubmit="return false">\n'
            '<label>label contains <input id="f-label" type="search" size="18"></label>\n'
            '<label>clips at least <input id="f-size" type="number" min="0" value="0" size="5"></label>\n'
            '<span id="f-count" aria-live="polite"></span>\n</form>\n'
            '<table id="clusters" class="data"></table>\n'
            '<nav class="pager" aria-label="table pages"><button id="prev" type="button">&larr; previous</button>'
            ' <span id="page"></span> <button id="next" type="button">next &rarr;</button></nav>\n</section>\n'
            '<section aria-labelledby="map-h" class="map">\n<h2 id="map-h">Map</h2>\n<p id="map-caption"></p>\n'
            '<div class="canvas-wrap"><canvas id="map" width="560" height="560" role="img" '
            'aria-label="2-D map of the clips coloured by cluster"></canvas><div id="tip" hidden></div></div>\n'
            '<ul id="legend" class="legend"></ul>\n</section>\n</div>\n</main>\n'
            '<script src="data/site.js"></script>\n<script src="static/browse.js"></script>\n</body>\n</html>\n')


@dataclass(frozen=True)
class ClipItem:
    """One member clip on a cluster page: media paths relative to the site root."""

    clip_id: str
    labels: tuple[str, ...]
    start_s: float
    end_s: float
    distance: float  # to the cluster's centre
    audio: str
    thumbnail: str
    other: int = -1  # borderline clips: the cluster whose centre is nearly as close
    other_distance: float = float("nan")


@dataclass(frozen=True)
class ClusterPage:
    head: int
    cluster: int
    size: int
    labelled: int
    segments: int
    purity: float
    entropy: float
    confidence: float
    top_labels: Sequence[tuple[str, int, float]]  # (label, clips, share)
    mean_mel: str  # relative to the site root
    segment_seconds: float
    thumb_size: tuple[int, int]  # (width, height) pixels of a thumbnail: (T, F)
    central: Sequence[ClipItem]
    border: Sequence[ClipItem]
    nearest: Sequence[tuple[int, float, int, str]]  # (cluster, centre distance, clips, top label (share))
    prev: int | None
    next: int | None


def cluster_path(head: int, cluster: int) -> str:
    return f"h{head}/c{cluster}.html"


def _clip_li(n: int, item: ClipItem, size: tuple[int, int]) -> str:
    labels = ", ".join(item.labels) or "(no reference label)"
    border = ""
    if item.other >= 0:  # a clip voted into this cluster may sit closer to another cluster's centre
        how = "closer to" if item.other_distance < item.distance else "nearly as close to"
        border = (f'<br><span class="lean">{how} the centre of <a href="c{item.other}.html">cluster {item.other}</a> '
                  f'(distance {number(item.other_distance)})</span>')
    return (f'<li id="clip{n}">\n<span class="num" aria-hidden="true">{n}</span>\n'
            # the clip id is said once, beside the image and the player (10^4 pages: every repeat costs megabytes)
            f'<img class="thumb" src="../{esc(item.thumbnail)}" loading="lazy" width="{size[0]}" height="{size[1]}" '
            f'alt="log-mel of clip {n}">\n'
            f'<div class="meta"><audio controls preload="none" src="../{esc(item.audio)}" '
            f'aria-label="play clip {n}"></audio>\n'
            f'<br><b class="cid">{esc(item.clip_id)}</b> <span class="t">{item.start_s:.1f}-{item.end_s:.1f} s</span>'
            f' <span class="d">distance to centre {number(item.distance)}</span>'
            f'<br><span class="labels">labels: {esc(labels)}</span>{border}</div>\n</li>\n')


def cluster_page(p: ClusterPage, run_title: str) -> str:
    """A cluster's page: numbers, reference labels, mean log-mel, member clips, nearest clusters."""
    title = f"Head {p.head} · cluster {p.cluster} — {run_title}"
    nav = [f'<a href="../index.html#h={p.head}" accesskey="u">&uarr; index (head {p.head})</a>']
    if p.prev is not None:
        nav.append(f'<a rel="prev" href="c{p.prev}.html">&larr; cluster {p.prev}</a>')
    if p.next is not None:
        nav.append(f'<a rel="next" href="c{p.next}.html">cluster {p.next} &rarr;</a>')
    stats = [("clips", str(p.size)), ("clips with a reference label", str(p.labelled)),
             ("segments in the cluster", str(p.segments)), ("top-label share (purity)", number(p.purity)),
             ("label entropy (bits)", number(p.entropy)), ("mean confidence", number(p.confidence))]
    out = [_head(title, "../static/browse.css"),
           f'<body data-page="cluster" data-head="{p.head}">\n<nav class="top">{" · ".join(nav)}'
           '<span class="keys">keys: &larr; &rarr; u 1-9</span></nav>\n<main>\n'
           f'<h1>Head {p.head} · cluster {p.cluster}</h1>\n<dl class="stats">\n',
           "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>\n" for k, v in stats), "</dl>\n",
           '<div class="split">\n<section aria-labelledby="labels-h">\n<h2 id="labels-h">Reference labels</h2>\n']
    if p.top_labels:
        out.append(f'<table class="data labels"><caption>share: of the {p.labelled} clips with a reference label (a '
                   'clip may carry several labels)</caption>\n<thead><tr><th scope="col">label</th>'
                   '<th scope="col">clips</th><th scope="col">share</th></tr></thead><tbody>\n')
        out += [f'<tr><td>{esc(lab)}</td><td class="n">{n}</td><td class="share"><span class="bar" '
                f'style="width:{share * 100:.0f}px"></span> {share:.2f}</td></tr>\n' for lab, n, share in p.top_labels]
        out.append("</tbody></table>\n")
    else:
        out.append("<p>No clip of this cluster has a reference label.</p>\n")
    out.append('</section>\n<section aria-labelledby="mean-h">\n<h2 id="mean-h">Mean log-mel</h2>\n'
               f'<figure><img class="mean" src="../{esc(p.mean_mel)}" width="{2 * p.thumb_size[0]}" '
               f'height="{2 * p.thumb_size[1]}" alt="mean log-mel of cluster {p.cluster}">'
               f'<figcaption>mean of the {p.segments} segments the head put in this cluster; time across '
               f'(0-{p.segment_seconds:g} s), mel bins up (low frequencies at the bottom), colours stretched to its '
               'own range (an average is flatter than any one segment)</figcaption></figure>\n</section>\n</div>\n')
    n = 0
    for name, items, what in (("central", p.central, "Closest to the centre"),
                              ("border", p.border, "Borderline")):
        if not items:
            continue
        out.append(f'<section aria-labelledby="{name}-h">\n<h2 id="{name}-h">{what} ({len(items)} of {p.size} '
                   f'clips)</h2>\n<ol class="clips" start="{n + 1}">\n')
        for item in items:
            n += 1
            out.append(_clip_li(n, item, p.thumb_size))
        out.append("</ol>\n</section>\n")
    out.append('<section aria-labelledby="near-h">\n<h2 id="near-h">Nearest clusters</h2>\n')
    if p.nearest:
        out.append('<table class="data"><thead><tr><th scope="col">cluster</th><th scope="col">distance between '
                   'centres</th><th scope="col">clips</th><th scope="col">top label (share)</th></tr></thead>'
                   '<tbody>\n')
        out += [f'<tr><td><a href="c{k}.html">cluster {k}</a></td><td class="n">{number(d)}</td>'
                f'<td class="n">{size}</td><td>{esc(top)}</td></tr>\n' for k, d, size, top in p.nearest]
        out.append("</tbody></table>\n")
    else:
        out.append("<p>No other non-empty cluster.</p>\n")
    out.append('</section>\n</main>\n<script src="../static/browse.js"></script>\n</body>\n</html>\n')
    return "".join(out)
