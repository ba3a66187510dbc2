"""Each clustering metric against values worked out by hand on small examples."""

from math import log2

import numpy as np
import pytest

from hear_sela.analysis import metrics as M
from hear_sela.analysis.ontology import normalise_name, to_top_level


def test_single_label_scores_by_hand():
    # clusters {0,1} and {2,3,4}; reference a a a b b -> contingency [[2, 0], [1, 2]]
    pred = np.array([0, 0, 1, 1, 1])
    ref = np.array(["a", "a", "a", "b", "b"])
    s = M.single_label_scores(pred, ref)
    assert s["purity"] == pytest.approx((2 + 2) / 5)
    # ARI: sum C(n_ij, 2) = 2; rows C(2,2)+C(3,2) = 4; cols C(3,2)+C(2,2) = 4; C(5,2) = 10
    expected_index = 4 * 4 / 10
    assert s["ari"] == pytest.approx((2 - expected_index) / ((4 + 4) / 2 - expected_index))
    # NMI: p(c0,a) = .4, p(c1,a) = .2, p(c1,b) = .4; both marginals (.4, .6)
    mi = 0.8 * log2(5 / 3) + 0.2 * log2(5 / 9)
    h = -(0.4 * log2(0.4) + 0.6 * log2(0.6))
    assert s["nmi"] == pytest.approx(mi / h)
    assert s["ami"] < s["nmi"]  # chance-corrected


def test_single_label_perfect_and_permuted_ids():
    ref = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([5, 5, 3, 3, 9, 9])  # same partition, other ids
    assert M.single_label_scores(pred, ref) == pytest.approx({"nmi": 1.0, "ami": 1.0, "ari": 1.0, "purity": 1.0})


def test_tag_mi_by_hand():
    # clusters {0,1}, {2,3}; tags {a}, {a,b}, {b}, {b}: joint counts [[2, 1], [0, 2]] over 5 (clip, tag) pairs
    pred = np.array([0, 0, 1, 1])
    y, vocab = M.multi_hot([("a",), ("a", "b"), ("b",), ("b",)])
    assert vocab == ["a", "b"]
    # p(k) = (.5, .5) from clips, p(l) = (.4, .6) from tag occurrences
    mi = 0.4 * log2(0.4 / (0.5 * 0.4)) + 0.2 * log2(0.2 / (0.5 * 0.6)) + 0.4 * log2(0.4 / (0.5 * 0.6))
    assert M.tag_mi(pred, y, n_clusters=2) == pytest.approx(mi)
    # normalised by log2 of the head's K, used or not
    assert M.tag_mi(pred, y, n_clusters=4) == pytest.approx(mi / 2)


def test_tag_mi_single_label_is_mi_over_log_k():
    pred = np.array([0, 0, 1, 1])
    y, _ = M.multi_hot([("a",), ("a",), ("b",), ("b",)])
    assert M.tag_mi(pred, y, 2) == pytest.approx(1.0)  # MI 1 bit / log2(2)
    assert M.tag_mi(pred, y, 8) == pytest.approx(1 / 3)


def test_tag_mi_independent_is_near_zero():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 10, 20000)
    y = rng.random((20000, 6)) < 0.3
    assert M.tag_mi(pred, y, 10) < 0.005


def test_multilabel_purity_by_hand():
    pred = np.array([0, 0, 1, 1])
    y, _ = M.multi_hot([("a",), ("b",), ("b",), ("a", "b")])
    # cluster 0: a 1, b 1 -> tie -> a (lower index): clip 0 right, clip 1 wrong; cluster 1: b 2 -> both right
    assert M.multilabel_purity(pred, y) == pytest.approx(0.75)


def test_multilabel_purity_equals_purity_on_single_labels():
    rng = np.random.default_rng(1)
    pred, ref = rng.integers(0, 7, 300), rng.integers(0, 4, 300)
    y, _ = M.multi_hot([(str(r),) for r in ref])
    assert M.multilabel_purity(pred, y) == pytest.approx(M.purity(pred, ref))


def test_overlapping_nmi_by_hand():
    # X0 = {0,1}, X1 = {2,3}; the cover Y has one set Y0 = {0,1}.
    # H(X) = 1 + 1 bits, H(Y) = 1. H(X0|Y0) = 0 (identical sets). X1 vs Y0: a = d = 0, b = c = .5 ->
    # h(a)+h(d) = 0 < h(b)+h(c) = 1: inadmissible, so H(X1|Y) = H(X1) = 1. H(X|Y) = 1, H(Y|X) = 0.
    # I = ((2 - 1) + (1 - 0)) / 2 = 1; NMI_max = 1 / max(2, 1) = 0.5
    pred = np.array([0, 0, 1, 1])
    y = np.array([[1], [1], [0], [0]], dtype=bool)
    assert M.overlapping_nmi(pred, y) == pytest.approx(0.5)


def test_overlapping_nmi_properties():
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 5, 400)
    same = np.eye(5, dtype=bool)[pred]
    assert M.overlapping_nmi(pred, same) == pytest.approx(1.0)
    assert M.overlapping_nmi(pred + 10, same) == pytest.approx(1.0)  # ids do not matter, empty clusters neither
    noise = rng.random((400, 5)) < 0.3
    assert M.overlapping_nmi(pred, noise) < 0.05


def test_majority_vote_ties_and_confidence():
    seg_clip = np.array([0, 0, 0, 1, 1, 2, 2])
    labels = np.array([3, 3, 5, 2, 4, 7, 1])
    conf = np.array([0.6, 0.8, 0.9, 0.9, 0.4, 0.5, 0.5])
    lab, c = M.majority_vote(labels, seg_clip, n_clips=4, confidences=conf)
    # clip 0: two votes for 3; clip 1: tie, 2 has more confidence; clip 2: full tie -> lower id; clip 3: none
    assert lab.tolist() == [3, 2, 1, -1]
    assert c[:3] == pytest.approx([0.7, 0.9, 0.5])


def test_best_cluster_per_label_and_entropy():
    counts = np.array([[4, 0], [1, 3], [0, 1]])
    sizes, label_sizes = np.array([4, 4, 1]), np.array([5, 4])
    best, f1, p, r = M.best_cluster_per_label(counts, sizes, label_sizes)
    # label 0: cluster 0 has p = 1, r = .8 -> F1 = 2*.8/1.8; label 1: cluster 1 has p = .75, r = .75
    assert best.tolist() == [0, 1]
    assert f1 == pytest.approx([2 * 0.8 / 1.8, 0.75])
    assert p == pytest.approx([1.0, 0.75]) and r == pytest.approx([0.8, 0.75])
    assert M.label_entropy(np.array([[2, 2], [4, 0], [0, 0]])) == pytest.approx([1.0, 0.0, 0.0])


def test_random_labeling_keeps_sizes():
    pred = np.repeat(np.arange(6), [1, 2, 3, 4, 5, 85])
    rnd = M.random_labeling(pred, seed=3)
    assert np.array_equal(np.bincount(rnd), np.bincount(pred)) and not np.array_equal(rnd, pred)


def test_cluster_label_counts_rejects_bad_ids():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        M.cluster_label_counts(np.array([0, 2]), np.ones((2, 1), bool), n_clusters=2)


def test_top_level_mapping():
    assert normalise_name("Male speech, man speaking") == normalise_name("Male_speech_and_man_speaking")
    tops, unmatched = to_top_level([["Dog"], ["/m/05zppz"], ["Choir"], ["Bark", "no_such_label"], []])
    assert tops[0] == ("Animal",)
    assert tops[1] == ("Human sounds",)  # by mid
    assert tops[2] == ("Human sounds", "Music")  # two parents in the DAG
    assert tops[3] == ("Animal",) and unmatched == ["no_such_label"]
    assert tops[4] == ()
    # an explicit vocabulary (FSD50K's label -> mid) wins over the name
    assert to_top_level([["weird_name"]], {"weird_name": "/m/0bt9lr"})[0] == [("Animal",)]


def test_overlapping_nmi_rejects_small_pure_clusters():
    # 10 classes of 40 items, each split into 4 pure clusters of 10: NMI stays high, ONMI's admissibility rule
    # (h(a) + h(d) >= h(b) + h(c)) refuses every pair, so it reports 0 (documented limitation at K >> classes)
    ref = np.repeat(np.arange(10), 40)
    pred = np.arange(400) // 10
    assert M.single_label_scores(pred, ref)["nmi"] > 0.7
    assert M.overlapping_nmi(pred, np.eye(10, dtype=bool)[ref]) == pytest.approx(0.0)
