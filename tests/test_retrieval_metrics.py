"""Retrieval measures against the reference code of each protocol: laion_clap's own
``evaluate_clotho_audiocaps`` and ``get_metrics`` (run from the installed package's source), and
transcriptions of XinhaoMei's ``a2t``/``t2a`` and the DCASE 2023 baseline's ``measure``
(tests/retrieval_reference.py), on embeddings where the protocols part: captions that outrank the
clip's earlier captions, a clip whose captions land far apart, recall of a clip's fraction of
captions, and exact ties."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from skclap.metrics import RETRIEVAL_PROTOCOLS, retrieval_metrics

from . import reference
from . import retrieval_reference as ref

TOL = 1e-9
CAPTIONS = 5


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def spread_set(n_clips: int = 14, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clips and five captions each (clip i's at rows 5 i .. 5 i + 4), without ties. How close a
    caption is to its clip varies within the clip, so its captions land at different depths of its
    ranking and later ones often outrank earlier ones; clip 0's last caption is its best, and its
    others lie far down."""
    rng = np.random.default_rng(seed)
    audio = unit(rng.standard_normal((n_clips, dim)))
    pull = rng.uniform(0.0, 2.5, (n_clips, CAPTIONS))
    pull[0] = [-1.0, 0.3, 1.0, 3.0, 8.0]
    text = unit(np.repeat(audio, CAPTIONS, axis=0) * pull.reshape(-1, 1) + rng.standard_normal((CAPTIONS * n_clips, dim)))
    owner = np.repeat(np.arange(n_clips), CAPTIONS)
    # the references sort float32 scores (XinhaoMei's cosine): no two of a row may be closer than that blurs
    sim = np.sort(text @ audio.T, axis=1)
    assert np.diff(sim, axis=1).min() > 1e-5 and np.diff(np.sort(sim.T, axis=1), axis=1).min() > 1e-5
    return audio, text, owner


def tied_set(n_clips: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clips and captions as 15 signs each, so that scores tie exactly: twin clips (odd ones differ
    from the even one before in two signs), captions a few signs away from their clip (a different
    number for each of a clip's captions, so that a clip's own captions never tie with each other).

    Returns the signs (``clips``, ``captions``) and ``owner``; ``render`` renders them for
    skclap (a 16th sign, always +1) or for a reference, with the ties broken either way."""
    rng = np.random.default_rng(seed)
    clips = rng.choice([-1.0, 1.0], (n_clips, 15))
    for i in range(1, n_clips, 2):
        clips[i] = clips[i - 1]
        clips[i, rng.choice(15, 2, replace=False)] *= -1
    captions = []
    for i in range(n_clips):
        for flips in rng.permutation(np.arange(1, 7))[:CAPTIONS]:
            c = clips[i].copy()
            c[rng.choice(15, flips, replace=False)] *= -1
            captions.append(c)
    return clips, np.array(captions), np.repeat(np.arange(n_clips), CAPTIONS)


def render(clips: np.ndarray, captions: np.ndarray, owner: np.ndarray, true_pair: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the signs, exact in float32 (16 entries of ±1/4). ``true_pair=None``: one more
    sign, +1 everywhere (every score shifts alike: the ties stay). ``true_pair=-1`` (or +1): one more
    dimension a clip, where the clip has +1 and its captions ``true_pair``, so that each true pair
    scores 1/16 below (above) the others that tied with it, and every other order is kept (scores
    of ±1 signs differ by at least 2/16)."""
    if true_pair is None:
        return np.hstack([clips, np.ones((len(clips), 1))]) / 4, np.hstack([captions, np.ones((len(captions), 1))]) / 4
    eye = np.eye(len(clips))
    return np.hstack([clips, eye]) / 4, np.hstack([captions, true_pair * eye[owner]]) / 4


def laion_keys(m: dict) -> dict[str, float]:
    """laion_clap's names, ``text_to_audio_R@1``, as skclap's, ``t2a_R@1``."""
    out = {}
    for key, value in m.items():
        for long, short in (("text_to_audio_", "t2a_"), ("audio_to_text_", "a2t_")):
            if key.startswith(long):
                out[short + key[len(long) :]] = value
    return out


def xinhao(audio: np.ndarray, text: np.ndarray) -> dict[str, float]:
    rows = np.repeat(audio, CAPTIONS, axis=0)  # the trainer's layout: the clip's row for each caption
    out = {}
    for side, fn in (("t2a", ref.t2a), ("a2t", ref.a2t)):
        r = fn(rows, text)
        out.update({f"{side}_R@{k}": r[f"r{k}"] / 100 for k in (1, 5, 10, 50)})
        out.update({f"{side}_mAP@10": r["mAP10"] / 100, f"{side}_median_rank": r["medr"], f"{side}_mean_rank": r["meanr"]})
    return out


def dcase(audio: np.ndarray, text: np.ndarray, owner: np.ndarray) -> dict[str, float]:
    fid2items, tid2items = ref.dcase_queries(audio, text, {t: int(f) for t, f in enumerate(owner)})
    out = {}
    for side, queries in (("a2t", fid2items), ("t2a", tid2items)):
        r = ref.measure(queries)
        out.update({f"{side}_R@{k}": r[f"R{k}"] for k in (1, 5, 10)})
        out[f"{side}_mAP@10"] = r["mAP"]
    return out


def assert_same(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert theirs, "no figures to compare"
    for key, value in theirs.items():
        assert abs(ours[key] - float(value)) <= TOL, (key, ours[key], value)


def laion(audio: np.ndarray, text: np.ndarray) -> dict[str, float]:
    return laion_keys(reference.run_laion_clotho_audiocaps(torch.from_numpy(audio), torch.from_numpy(text)))


# --- each protocol equals its reference, without ties -----------------------------------------


def test_the_test_set_parts_the_protocols():
    audio, text, owner = spread_set()
    std, lai, dca = (retrieval_metrics(audio, text, owner, protocol=p) for p in ("standard", "laion", "dcase"))
    assert lai["a2t_mAP@10"] > std["a2t_mAP@10"] + 0.01  # captions outrank earlier ones of their clip
    assert dca["a2t_R@1"] <= 0.2 < std["a2t_R@1"] and dca["a2t_R@10"] < std["a2t_R@10"]
    assert {k: v for k, v in lai.items() if k != "a2t_mAP@10"} == {k: v for k, v in std.items() if k != "a2t_mAP@10"}
    ranking = np.argsort(-(audio[0] @ text.T), kind="stable")
    where = [int(np.flatnonzero(ranking == j)[0]) for j in range(CAPTIONS)]
    assert where[-1] == 0 and min(where[:-1]) > 0 and max(where) > 40 and where != sorted(where)  # clip 0: far apart, out of order


def test_laion_protocol_is_laion_clap_evaluate_clotho_audiocaps():
    audio, text, owner = spread_set()
    theirs = laion(audio, text)
    assert {"t2a_R@1", "t2a_mAP@10", "t2a_median_rank", "t2a_mean_rank", "a2t_R@10", "a2t_mAP@10"} <= set(theirs)
    assert_same(retrieval_metrics(audio, text, owner, protocol="laion"), theirs)
    # and its audio->text mAP@10 is not the sorted one
    assert abs(retrieval_metrics(audio, text, owner)["a2t_mAP@10"] - theirs["a2t_mAP@10"]) > 0.01


def test_standard_protocol_is_xinhaomei_a2t_t2a():
    audio, text, owner = spread_set()
    assert_same(retrieval_metrics(audio, text, owner, ks=(1, 5, 10, 50)), xinhao(audio, text))


def test_dcase_protocol_is_the_dcase_2023_baseline_measure():
    audio, text, owner = spread_set()
    theirs = dcase(audio, text, owner)
    assert_same(retrieval_metrics(audio, text, owner, protocol="dcase"), theirs)
    assert retrieval_metrics(audio, text, owner)["a2t_R@5"] > theirs["a2t_R@5"] + 0.1


@pytest.mark.parametrize("protocol", sorted(RETRIEVAL_PROTOCOLS))
def test_one_caption_a_clip_is_laion_clap_get_metrics(protocol):
    """With one caption a clip the protocols agree, and are laion_clap's ``get_metrics``."""
    rng = np.random.default_rng(1)
    audio = unit(rng.standard_normal((40, 16)))
    text = unit(audio * rng.uniform(0, 3, (40, 1)) + rng.standard_normal((40, 16)))
    theirs = laion_keys(
        reference.laion_clap_retrieval().get_metrics(torch.from_numpy(audio), torch.from_numpy(text), torch.tensor(1 / 0.07))
    )
    assert len(theirs) == 12  # R@1/5/10, mAP@10, median and mean rank, both ways
    assert_same(retrieval_metrics(audio, text, np.arange(40), protocol=protocol), theirs)


# --- ties: each protocol equals its reference with every tie broken against the true item ------


@pytest.fixture(scope="module")
def tied():
    clips, captions, owner = tied_set()
    a, t = render(clips, captions, owner, None)
    sim = t @ a.T
    true = sim[np.arange(len(owner)), owner]
    assert ((sim == true[:, None]).sum(axis=1) > 1).sum() >= 10  # captions whose clip ties with another clip
    by_clip = sim.T
    ties = sum(((by_clip[i] == by_clip[i, owner == i][:, None]) & (owner != i)).any(axis=1).sum() for i in range(len(clips)))
    assert ties >= 10  # captions that tie with another clip's caption
    return clips, captions, owner, a, t


def test_ties_count_against_the_true_item_laion(tied):
    clips, captions, owner, a, t = tied
    theirs = laion(*render(clips, captions, owner, -1.0))
    assert_same(retrieval_metrics(a, t, owner, protocol="laion"), theirs)
    hopeful = laion(*render(clips, captions, owner, +1.0))
    assert hopeful["t2a_R@1"] > theirs["t2a_R@1"] and hopeful["a2t_mAP@10"] > theirs["a2t_mAP@10"]  # the ties matter


def test_ties_count_against_the_true_item_standard(tied):
    clips, captions, owner, a, t = tied
    theirs = xinhao(*render(clips, captions, owner, -1.0))
    assert_same(retrieval_metrics(a, t, owner, ks=(1, 5, 10, 50)), theirs)
    assert xinhao(*render(clips, captions, owner, +1.0))["a2t_mean_rank"] < theirs["a2t_mean_rank"]


def test_ties_count_against_the_true_item_dcase(tied):
    clips, captions, owner, a, t = tied
    theirs = dcase(*render(clips, captions, owner, -1.0), owner)
    assert_same(retrieval_metrics(a, t, owner, protocol="dcase"), theirs)
    assert dcase(*render(clips, captions, owner, +1.0), owner)["a2t_R@5"] > theirs["a2t_R@5"]


def test_duplicate_clips_are_no_hit():
    audio = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    text = audio.copy()
    for protocol in RETRIEVAL_PROTOCOLS:
        m = retrieval_metrics(audio, text, [0, 1, 2], protocol=protocol)
        assert m["t2a_R@1"] == pytest.approx(1 / 3) and m["a2t_R@1"] == pytest.approx(1 / 3)
        assert m["t2a_mean_rank"] == pytest.approx(5 / 3) and m["t2a_median_rank"] == 2.0  # 0-based ranks 1, 1, 0


# --- by hand, and what the references cannot say ---------------------------------------------


def test_the_documented_example():
    """Clip 0's two captions at ranks 2 and 1, in that caption order; clip 1's five captions on top
    of its ranking. laion: clip 0 scores (1/2 + 2/1) / 2; rank order gives (1/1 + 2/2) / 2."""
    audio = np.array([[1.0, 0.0], [0.0, 1.0]])
    text = np.array([[0.8, 0.6], [1.0, 0.0]] + [[0.0, 1.0]] * 5)
    owner = [0, 0, 1, 1, 1, 1, 1]
    std, lai, dca = (retrieval_metrics(audio, text, owner, protocol=p) for p in ("standard", "laion", "dcase"))
    assert std["a2t_mAP@10"] == pytest.approx(1.0) and lai["a2t_mAP@10"] == pytest.approx((1.25 + 1) / 2)
    assert std["a2t_R@1"] == 1.0 and dca["a2t_R@1"] == pytest.approx((1 / 2 + 1 / 5) / 2) and dca["a2t_R@5"] == pytest.approx((1 + 1) / 2)


def test_a_clip_without_captions_is_a_candidate_not_a_query():
    audio, text, owner = spread_set()
    extra = np.vstack([audio, audio[3]])  # clip 14 has no caption and is clip 3's twin
    sim = text @ extra.T
    true = sim[np.arange(len(owner)), owner]
    pushed = (sim[:, -1] >= true).mean()  # captions whose clip the twin ties (clip 3's) or outranks
    for protocol in RETRIEVAL_PROTOCOLS:
        before, after = retrieval_metrics(audio, text, owner, protocol=protocol), retrieval_metrics(extra, text, owner, protocol=protocol)
        assert {k: v for k, v in after.items() if k.startswith("a2t")} == {k: v for k, v in before.items() if k.startswith("a2t")}
        assert after["t2a_mean_rank"] == pytest.approx(before["t2a_mean_rank"] + pushed)
        assert after["t2a_R@1"] < before["t2a_R@1"]


def test_keys_and_arguments():
    audio, text, owner = spread_set()
    m = retrieval_metrics(audio, text, owner, ks=(1, 3))
    assert list(m) == [
        "t2a_R@1", "a2t_R@1", "t2a_R@3", "a2t_R@3", "t2a_mAP@10", "a2t_mAP@10",
        "t2a_median_rank", "a2t_median_rank", "t2a_mean_rank", "a2t_mean_rank",
    ]  # fmt: skip
    assert retrieval_metrics(audio.astype(np.float32), text.astype(np.float32), list(owner)) == pytest.approx(
        retrieval_metrics(audio, text, owner)
    )
    with pytest.raises(ValueError, match="protocol must be one of"):
        retrieval_metrics(audio, text, owner, protocol="clotho")
    with pytest.raises(ValueError, match="a clip for each"):
        retrieval_metrics(audio, text, owner[:-1])
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(audio, text, owner + 1)
    with pytest.raises(ValueError, match="at least 1"):
        retrieval_metrics(audio, text, owner, ks=(0,))


def test_the_docs_show_the_protocol_table_of_the_code():
    page = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \| (.+?) \|$", page, flags=re.M)
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {
        p.name: (p.a2t_recall, p.a2t_map_order, p.source) for p in RETRIEVAL_PROTOCOLS.values()
    }
