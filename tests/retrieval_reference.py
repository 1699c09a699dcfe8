"""Test oracles for the retrieval protocols whose code is not installed here, transcribed from their
public repositories: XinhaoMei/audio-text_retrieval's ``a2t`` and ``t2a`` (the "standard" protocol)
and the DCASE 2023 task 6b baseline's ``measure`` ("dcase"). Each line follows its source, cited by
file and line; the only changes are the ones named in comments (figures returned instead of printed
or dropped, and the one library call inlined). laion_clap's own code is installed and is run as it
is (tests/reference.py).

Sources, as read:
- XinhaoMei/audio-text_retrieval @ 13c21d9a37392b7fc45ed4f91581ce4caf0bc9bd, ``tools/utils.py``:
  ``a2t`` lines 75-119, ``t2a`` lines 122-156. Its trainer calls both on embeddings with the clip's
  row repeated for each of its five captions (``trainer/trainer.py`` lines 192 and 199).
- sentence-transformers @ 03667b396f1a97575268fc1f1fc70d98130244c7, ``sentence_transformers/util.py``
  lines 23-42: ``cos_sim``, which ``a2t``/``t2a`` call.
- xieh97/dcase2023-audio-retrieval @ 359cbc4407254405d2a568bea4458121eceda2e2:
  ``postprocessing/xmodal_retrieval.py`` lines 32-69 (``measure``) and 92-104 (the queries it is
  given); ``postprocessing/xmodal_scores.py`` lines 64-76 (the score of every clip with every
  caption); ``utils/criterion_utils.py`` lines 50-57 (``score``: ``dot_product``, the setting of
  ``conf.yaml`` line 83).
"""

from __future__ import annotations

import numpy as np
import torch


# sentence_transformers/util.py lines 23-42
def cos_sim(a, b):
    if not isinstance(a, torch.Tensor):
        a = torch.tensor(a)
    if not isinstance(b, torch.Tensor):
        b = torch.tensor(b)
    if len(a.shape) == 1:
        a = a.unsqueeze(0)
    if len(b.shape) == 1:
        b = b.unsqueeze(0)
    a_norm = torch.nn.functional.normalize(a, p=2, dim=1)
    b_norm = torch.nn.functional.normalize(b, p=2, dim=1)
    return torch.mm(a_norm, b_norm.transpose(0, 1))


# tools/utils.py lines 75-119. Changed: the figures come back as a dict, with the mAP@10 that the
# function computes (line 113) but does not return; ``util.cos_sim`` is the function above.
def a2t(audio_embs, cap_embs):
    # audio to caption retrieval
    num_audios = int(audio_embs.shape[0] / 5)
    index_list = []

    ranks = np.zeros(num_audios)
    top1 = np.zeros(num_audios)
    mAP10 = np.zeros(num_audios)
    for index in range(num_audios):
        # get query audio
        audio = audio_embs[5 * index].reshape(1, audio_embs.shape[1])

        # compute scores
        d = cos_sim(torch.Tensor(audio), torch.Tensor(cap_embs)).squeeze(0).numpy()
        inds = np.argsort(d)[::-1]
        index_list.append(inds[0])

        inds_map = []

        rank = 1e20
        for i in range(5 * index, 5 * index + 5, 1):
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
            if tmp < 10:
                inds_map.append(tmp + 1)
        inds_map = np.sort(np.array(inds_map))
        if len(inds_map) != 0:
            mAP10[index] = np.sum((np.arange(1, len(inds_map) + 1) / inds_map)) / 5  # noqa: UP034 (as in the source)
        else:
            mAP10[index] = 0.0
        ranks[index] = rank
        top1[index] = inds[0]
    # compute metrics
    r1 = 100.0 * len(np.where(ranks < 1)[0]) / len(ranks)
    r5 = 100.0 * len(np.where(ranks < 5)[0]) / len(ranks)
    r10 = 100.0 * len(np.where(ranks < 10)[0]) / len(ranks)
    r50 = 100.0 * len(np.where(ranks < 50)[0]) / len(ranks)
    mAP10 = 100.0 * np.sum(mAP10) / len(ranks)
    medr = np.floor(np.median(ranks)) + 1
    meanr = ranks.mean() + 1
    return {"r1": r1, "r5": r5, "r10": r10, "r50": r50, "medr": medr, "meanr": meanr, "mAP10": mAP10}


# tools/utils.py lines 122-156. Changed as ``a2t``: a dict, with the mAP@10 of line 150.
def t2a(audio_embs, cap_embs):
    # caption to audio retrieval
    num_audios = int(audio_embs.shape[0] / 5)

    audios = np.array([audio_embs[i] for i in range(0, audio_embs.shape[0], 5)])

    ranks = np.zeros(5 * num_audios)
    top1 = np.zeros(5 * num_audios)

    for index in range(num_audios):
        # get query captions
        queries = cap_embs[5 * index : 5 * index + 5]

        # compute scores
        d = cos_sim(torch.Tensor(queries), torch.Tensor(audios)).numpy()

        inds = np.zeros(d.shape)
        for i in range(len(inds)):
            inds[i] = np.argsort(d[i])[::-1]
            ranks[5 * index + i] = np.where(inds[i] == index)[0][0]
            top1[5 * index + i] = inds[i][0]

    # compute metrics
    r1 = 100.0 * len(np.where(ranks < 1)[0]) / len(ranks)
    r5 = 100.0 * len(np.where(ranks < 5)[0]) / len(ranks)
    r10 = 100.0 * len(np.where(ranks < 10)[0]) / len(ranks)
    r50 = 100.0 * len(np.where(ranks < 50)[0]) / len(ranks)
    mAP10 = 100.0 * np.sum(1 / (ranks[np.where(ranks < 10)[0]] + 1)) / len(ranks)
    medr = np.floor(np.median(ranks)) + 1
    meanr = ranks.mean() + 1
    return {"r1": r1, "r5": r5, "r10": r10, "r50": r50, "medr": medr, "meanr": meanr, "mAP10": mAP10}


# postprocessing/xmodal_retrieval.py lines 32-69. Changed: the four means are returned, not printed.
def measure(qid2items):
    # Retrieval metrics over sample queries
    # i.e., recall@{1, 5, 10}, mAP@10.
    qid_R1s, qid_R5s, qid_R10s, qid_mAP10s = [], [], [], []

    for qid in qid2items:
        items = qid2items[qid]

        objects = [i[0] for i in items]  # noqa: F841 (as in the source)
        scores = np.array([i[1] for i in items])
        targets = np.array([i[2] for i in items])

        desc_indices = np.argsort(scores, axis=-1)[::-1]
        targets = np.take_along_axis(arr=targets, indices=desc_indices, axis=-1)

        # Recall at cutoff K
        R1 = np.sum(targets[:1], dtype=float) / np.sum(targets, dtype=float)
        R5 = np.sum(targets[:5], dtype=float) / np.sum(targets, dtype=float)
        R10 = np.sum(targets[:10], dtype=float) / np.sum(targets, dtype=float)

        qid_R1s.append(R1)
        qid_R5s.append(R5)
        qid_R10s.append(R10)

        # Mean average precision
        positions = np.arange(1, 11, dtype=float)[targets[:10] > 0]
        if len(positions) > 0:
            precisions = np.divide(np.arange(1, len(positions) + 1, dtype=float), positions)
            avg_precision = np.sum(precisions, dtype=float) / np.sum(targets, dtype=float)
            qid_mAP10s.append(avg_precision)
        else:
            qid_mAP10s.append(0.0)

    return {"mAP": np.mean(qid_mAP10s), "R1": np.mean(qid_R1s), "R5": np.mean(qid_R5s), "R10": np.mean(qid_R10s)}


def dcase_queries(audio: np.ndarray, text: np.ndarray, tid2fid: dict[int, int]) -> tuple[dict, dict]:
    """The audio->text and text->audio queries that ``measure`` is given, as the baseline builds
    them: every clip's score with every caption (``xmodal_scores.py`` lines 64-76, ``score`` with
    ``dot_product``: ``torch.matmul(audio_embed, text_embed.t())``), then items of (object, score,
    is-a-target) per clip and per caption (``xmodal_retrieval.py`` lines 92-104). Clips are those
    that have captions (line 64: ``ds.text_data["fid"].unique()``)."""
    stream = {}
    for fid in dict.fromkeys(tid2fid.values()):  # unique, in order of first appearance
        group_scores = {}
        audio_embed = torch.as_tensor(audio[fid])
        for tid in tid2fid:
            text_embed = torch.as_tensor(text[tid])
            group_scores[tid] = torch.matmul(audio_embed, text_embed.t()).item()
        stream[fid] = group_scores
    fid2items, tid2items = {}, {}
    for fid in stream:
        group_scores = stream[fid]
        # Audio2Text retrieval
        fid2items[fid] = [(tid, group_scores[tid], tid2fid[tid] == fid) for tid in group_scores]
        # Text2Audio retrieval
        for tid in group_scores:
            if tid2items.get(tid, None) is None:
                tid2items[tid] = [(fid, group_scores[tid], tid2fid[tid] == fid)]
            else:
                tid2items[tid].append((fid, group_scores[tid], tid2fid[tid] == fid))
    return fid2items, tid2items
