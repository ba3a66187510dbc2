"""`hear-sela browse`: the pure choices of a cluster page, and the static site of conftest's tiny_sela_run: its HTML
parses, every link resolves inside the site, every excerpt is the right segment of the right clip, every cluster
page lists the head's own clips. The slow test opens it in headless Chromium (scripts/install_chromium.sh)."""

import dataclasses
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from hear_sela.analysis.browse import media, pages
from hear_sela.analysis.browse import select as sel
from hear_sela.cli import main as cli
from hear_sela.data.audio import load_audio
from hear_sela.frontend import LogMel

# ---------------------------------------------------------------- pure choices


def test_centre_distances_match_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    labels = rng.integers(0, 5, 40)
    labels[labels == 3] = 4  # cluster 3 empty: never anyone's nearest
    centres, sizes = sel.cluster_centres(x, labels, 5)
    assert sizes[3] == 0 and np.isnan(centres[3]).all()
    own, other, other_k = sel.centre_distances(x, labels, centres, chunk=7)
    for i in range(40):
        d = {k: np.linalg.norm(x[i] - centres[k]) for k in (0, 1, 2, 4)}
        assert own[i] == pytest.approx(d[labels[i]])
        rest = {k: v for k, v in d.items() if k != labels[i]}
        assert other_k[i] == min(rest, key=rest.get) and other[i] == pytest.approx(min(rest.values()))


def test_choose_members_central_then_borderline():
    members = np.array([2, 5, 7, 9, 11])
    own = np.zeros(12)
    other = np.full(12, 10.0)
    own[members] = [0.5, 0.1, 0.3, 2.0, 1.0]
    other[members] = [9.0, 9.0, 9.0, 2.5, 8.0]  # clip 9 is far from its centre but nearly as far from another
    central, border = sel.choose_members(members, own, other, 2, 2)
    assert central.tolist() == [5, 7]  # the two smallest own distances
    assert border.tolist() == [9, 11]  # the rest by margin other - own: 0.5 (9), 7.0 (11), 8.5 (2)
    assert not set(central) & set(border)
    central, border = sel.choose_members(members, own, other, 8, 2)
    assert sorted(central) == members.tolist() and len(border) == 0


def test_nearest_clusters_skip_self_and_empty():
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, np.nan], [5.0, 0.0]])
    ids, dist = sel.nearest_clusters(centres, 3)
    assert ids[0].tolist() == [1, 3, -1] and dist[0, :2].tolist() == [1.0, 5.0] and np.isinf(dist[0, 2])
    assert ids[2].tolist() == [-1, -1, -1]


def test_shared_segment_is_the_one_most_heads_put_in_the_clips_cluster():
    seg_clip = np.array([0, 0, 0, 1, 1, 2, 2])
    seg_lab = np.array([[3, 1, 1, 2, 2, 0, 5],  # head 0 votes: clip 0 -> 1, clip 1 -> 2, clip 2 -> 5
                        [3, 3, 4, 2, 2, 0, 0]])  # head 1 votes: clip 0 -> 3, clip 1 -> 2, clip 2 -> 9 (none)
    clip_lab = np.array([[1, 2, 5], [3, 2, 9]])
    # clip 0: segments 0 (head 1), 1 (both), 2 (head 0) -> 1; clip 1: both agree on both -> the earlier, 3;
    # clip 2: only head 0 agrees, on segment 6
    assert sel.shared_segment(seg_lab, seg_clip, clip_lab).tolist() == [1, 3, 6]
    assert sel.shared_segment(seg_lab[:1], seg_clip, clip_lab[:1]).tolist() == [1, 3, 6]
    assert sel.shared_segment(seg_lab[1:], seg_clip, clip_lab[1:]).tolist() == [0, 3, 5]  # no agreement: earliest


def test_cluster_stats_and_top_labels():
    labels = np.array([0, 0, 0, 1, 2])
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 0]], dtype=bool)  # clip 2 and 4 unlabelled
    st = sel.cluster_stats(labels, np.array([0.2, 0.4, 0.6, 1.0, 1.0]), y, 4)
    assert st.sizes.tolist() == [3, 1, 1, 0] and st.labelled.tolist() == [2, 1, 0, 0]
    assert st.purity[0] == 1.0 and np.isnan(st.purity[2]) and st.confidence[0] == pytest.approx(0.4)
    assert sel.top_labels(st.counts[0], 2, ["a", "b"], 5) == [("a", 2, 1.0), ("b", 1, 0.5)]


def test_excerpt_span_caps_length_and_clip_end():
    assert media.excerpt_span(1.0, 2.0, 5.0, 48000, 16000) == (16000, 48000)
    assert media.excerpt_span(1.0, 10.0, 5.0, 400000, 16000) == (16000, 96000)
    assert media.excerpt_span(2.5, 2.0, 5.0, 48000, 16000) == (40000, 48000)


def test_thumbnails_average_runs_of_frames():
    mel = np.arange(10, dtype=np.float32).reshape(2, 5)  # (F, T)
    np.testing.assert_allclose(media.pool_frames(mel, 2), [[0.5, 2.5, 4.0], [5.5, 7.5, 9.0]])
    np.testing.assert_array_equal(media.pool_frames(mel, 1), mel)


def test_cluster_mean_mels_is_the_mean_of_each_clusters_segments():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(9, 4, 5)).astype(np.float16)
    labels = np.array([[0, 1, 1, 0, 2, 2, 2, 0, 1], [3, 3, 3, 3, 3, 3, 3, 3, 0]])
    means = media.cluster_mean_mels(feats, labels, 4, batch=4)
    assert means.shape == (2, 4, 4, 5)
    np.testing.assert_allclose(means[0, 1], feats[[1, 2, 8]].astype(np.float32).mean(0), rtol=1e-5)
    np.testing.assert_allclose(means[1, 3], feats[:8].astype(np.float32).mean(0), rtol=1e-5)
    assert np.isnan(means[0, 3]).all()


def test_borderline_clip_says_whether_another_centre_is_closer():
    item = pages.ClipItem("a/b", ("x",), 0.0, 2.0, 3.0, "media/0000/s1.ogg", "media/0000/s1.webp", other=7,
                          other_distance=2.5)
    assert "closer to the centre of <a href=\"c7.html\">cluster 7</a>" in pages._clip_li(9, item, (201, 64))
    item = dataclasses.replace(item, other_distance=3.5)
    assert "nearly as close to the centre of" in pages._clip_li(9, item, (201, 64))


# ---------------------------------------------------------------- the site


class StrictHTML(HTMLParser):
    """Every element closed in order (void elements excepted); collects local links."""

    VOID = {"meta", "link", "img", "br", "input", "hr", "source", "col", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        self.links += [v for k, v in attrs if k in ("href", "src") and v]

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> StrictHTML:
    p = StrictHTML()
    p.feed(path.read_text())
    p.close()
    assert p.stack == [], f"{path}: unclosed {p.stack}"
    return p


def read_js(path: Path, prefix: str, suffix: str):
    text = path.read_text().strip()
    assert text.startswith(prefix) and text.endswith(suffix)
    return json.loads(text[len(prefix):-len(suffix)])


@pytest.fixture(scope="module")
def site(tiny_sela_run):
    root, cache = tiny_sela_run
    out = root / "site"
    assert cli(["browse", str(root / "final.pt"), "--out", str(out), "--central", "2", "--border", "1"]) == 0
    return out, cache


def test_html_parses_and_every_link_resolves_inside_the_site(site):
    out, _ = site
    pages = sorted(out.rglob("*.html"))
    assert (out / "index.html") in pages and len(pages) > 2
    for page in pages:
        for link in parse(page).links:
            assert not re.match(r"^[a-z]+:", link), f"{page}: {link} leaves the site (no network, no CDN)"
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.is_file() and out.resolve() in target.parents, f"{page}: {link} missing"
    for name in ("static/browse.js", "static/browse.css", "data/site.js"):
        assert not re.search(r"https?://", (out / name).read_text()), name


def test_cluster_pages_list_exactly_the_heads_clips(site):
    out, cache = site
    votes = pd.read_csv(out / "analysis" / "clip_labels.csv")
    site_js = read_js(out / "data" / "site.js", "window.SITE = ", ";")
    assert site_js["heads"] == 2 and len(site_js["xy"]) == 2 * len(cache.clips)
    for h in range(2):
        mine = votes[votes["head"] == h]
        head_js = read_js(out / "data" / f"head{h}.js", f"SITE_HEAD({h}, ", ");")
        assert head_js["clip"] == mine.set_index("clip_id").loc[[c.clip_id for c in cache.clips], "label"].tolist()
        sizes = mine["label"].value_counts()
        assert {r[0]: r[1] for r in head_js["clusters"]} == sizes.to_dict()
        for k, size in sizes.items():
            listed = re.findall(r'<b class="cid">([^<]+)</b>', (out / f"h{h}" / f"c{k}.html").read_text())
            members = set(mine.loc[mine["label"] == k, "clip_id"])
            assert len(listed) == len(set(listed)) == min(size, 3)  # --central 2 --border 1
            assert set(listed) <= members and (size > 3 or set(listed) == members)
        assert {int(f.stem[1:]) for f in (out / f"h{h}").glob("c*.html")} == set(sizes.index)  # non-empty ones


def segment_audio(cache, segment: int) -> np.ndarray:
    """The segment as the encoder heard it: (segment_samples,) at the frontend's rate, shorter at a clip's end."""
    sr = cache.frontend.sample_rate
    a = int(round(cache.segment_start[segment] * sr))
    return load_audio(cache.clips[int(cache.segment_clip[segment])].path, sr)[a:a + cache.manifest["segment"][
        "segment_samples"]]


def test_every_excerpt_is_the_right_segment_of_the_right_clip(site):
    """Opus at ~12 kbit/s keeps each band's energy but not the waveform of noisy sounds (rain decodes with a
    correlation near 0): the decoded excerpt's log-mel must match its segment's cached log-mel, and match it better
    than any segment of another clip. That the span is exactly the segment's samples is checked losslessly (FLAC)
    below."""
    out, cache = site
    seg_samples = cache.manifest["segment"]["segment_samples"]
    logmel = LogMel(cache.frontend)
    feats = np.asarray(cache.features, dtype=np.float32)  # (S, F, T)
    checked = 0
    for page in sorted(out.glob("h*/c*.html")):
        html = page.read_text()
        for src, clip_id, start in re.findall(
                r'<audio controls preload="none" src="\.\./(media/\d+/s\d+\.opus)".*?<b class="cid">([^<]+)</b> '
                r'<span class="t">([\d.]+)-', html, flags=re.S):
            segment = int(re.search(r"s(\d+)\.opus", src)[1])
            clip = int(cache.segment_clip[segment])
            assert cache.clips[clip].clip_id == clip_id
            assert float(start) == pytest.approx(cache.segment_start[segment], abs=0.05)
            got, sr = sf.read(out / src, dtype="float32")
            assert sr == cache.frontend.sample_rate and len(got) == len(segment_audio(cache, segment))
            wav = np.zeros(seg_samples, dtype=np.float32)  # zero-padded as the cache pads a clip's last segment
            wav[:len(got)] = got
            mel = logmel.log_mel(torch.from_numpy(wav)[None])[0].numpy()  # (F, T)
            dist = np.abs(feats - mel).mean(axis=(1, 2))  # (S,)
            others = cache.segment_clip != clip
            assert dist[segment] < 1.0 and dist[segment] < dist[others].min(), (src, dist[segment], dist[others].min())
            checked += 1
    assert checked > 10


def test_each_clip_shown_has_one_excerpt_and_thumbnail_shared_by_every_head(site):
    out, cache = site
    media_of: dict[str, set] = {}  # clip id -> the media files its list items link, over every head's pages
    heads_of: dict[str, set] = {}
    for page in sorted(out.glob("h*/c*.html")):
        for thumb, audio, clip_id in re.findall(r'<img class="thumb" src="\.\./([^"]+)".*?<audio [^>]*'
                                                r'src="\.\./([^"]+)".*?<b class="cid">([^<]+)</b>',
                                                page.read_text(), flags=re.S):
            media_of.setdefault(clip_id, set()).update([thumb, audio])
            heads_of.setdefault(clip_id, set()).add(page.parent.name)
    assert any(len(h) > 1 for h in heads_of.values()), "no clip shown by two heads: sharing is not exercised"
    assert all(len(files) == 2 for files in media_of.values()), {c: f for c, f in media_of.items() if len(f) != 2}
    linked = set().union(*media_of.values())
    on_disk = {str(f.relative_to(out)) for f in (out / "media").rglob("*") if f.is_file()}
    assert on_disk == linked and len(on_disk) == 2 * len(media_of)  # no file twice, none unlinked
    for files in media_of.values():  # and the shared segment is one of the clip's own
        segment = int(re.search(r"s(\d+)\.", sorted(files)[0])[1])
        assert {int(re.search(r"s(\d+)\.", f)[1]) for f in files} == {segment}
    ids = {c.clip_id: i for i, c in enumerate(cache.clips)}
    assert all(int(cache.segment_clip[int(re.search(r"s(\d+)\.", sorted(f)[0])[1])]) == ids[c]
               for c, f in media_of.items())


def test_flac_excerpts_are_the_segments_samples(tiny_sela_run, tmp_path):
    _, cache = tiny_sela_run
    names = media.write_excerpts(cache, [0, 3, len(cache) - 1], tmp_path, "flac", 5.0)
    for s, name in names.items():
        got, _ = sf.read(tmp_path / name, dtype="float32")
        np.testing.assert_allclose(got, segment_audio(cache, s), atol=1.0 / 2**15)  # 16-bit FLAC


def test_excerpts_in_worker_processes_are_the_same_files(tiny_sela_run, tmp_path):
    _, cache = tiny_sela_run
    segments = list(range(0, len(cache), 3))
    one = media.write_excerpts(cache, segments, tmp_path / "one", "ogg", 5.0)
    two = media.write_excerpts(cache, segments, tmp_path / "two", "ogg", 5.0, workers=2)
    assert one == two and len(one) == len(segments)
    for name in one.values():  # the same decoded samples (the files differ: an Ogg stream's serial is random)
        np.testing.assert_array_equal(sf.read(tmp_path / "one" / name)[0], sf.read(tmp_path / "two" / name)[0])


def test_mp3_excerpts_decode_to_the_segment(tiny_sela_run, tmp_path):
    _, cache = tiny_sela_run
    names = media.write_excerpts(cache, [0, 3], tmp_path, "mp3", 5.0)
    for name in names.values():
        got, sr = sf.read(tmp_path / name, dtype="float32")
        assert sr == cache.frontend.sample_rate
        assert abs(len(got) - cache.manifest["segment"]["segment_samples"]) < 0.1 * sr  # MP3 pads a frame or so


def test_browse_reads_an_analysis_folder_and_names_a_bad_one(site, tmp_path, capsys):
    out, _ = site
    assert cli(["browse", str(out / "analysis"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "index.html").is_file()
    assert cli(["browse", str(tmp_path), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "lacks summary.json" in err and str(tmp_path) in err and "Traceback" not in err


# ---------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: run scripts/install_chromium.sh (Debian's package)")
def test_index_and_cluster_page_in_headless_chromium(site, tmp_path):
    out, _ = site
    for page in (out / "index.html", out / "h0" / "c0.html"):
        shot = tmp_path / f"{page.parent.name}_{page.stem}.png"
        chromium("--window-size=1300,1500", f"--screenshot={shot}", page.as_uri())
        assert shot.stat().st_size > 10_000
        dom = chromium("--dump-dom", page.as_uri())
        assert "data-js-error" not in dom, re.search(r'data-js-error="[^"]*"', dom)[0]
        assert 'data-ready="1"' in dom, f"{page}: its script did not finish"
        if page.name == "index.html":  # the script filled the tables from data/*.js
            assert "non-empty clusters shown" in dom and 'href="h0/c0.html"' in dom
