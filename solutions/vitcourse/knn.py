"""Week 5 · The weighted k-nearest-neighbour classifier of DINO: judging features without training.

Shapes: N training (bank) features, M query features, D their width, k neighbours, K classes.

A good representation puts images of one class close together. The k-NN classifier measures
exactly that, with no parameters to fit (Wu et al. 2018; Caron et al. 2021, DINO's
``eval_knn.py``):

    sim = normalise(queries) @ normalise(bank)^T                   (M, N) cosine similarities
    the k largest sim per query: s_1 >= ... >= s_k, labels y_1 .. y_k
    scores[m, c] = sum_j exp(s_j / T) [y_j == c]                   (M, K) weighted one-hot votes
    prediction = argmax_c scores[m, c]

A near neighbour outweighs a far one: with T = 0.07 a similarity 0.1 higher weighs exp(0.1 / 0.07)
= 4.2 times more. DINO's defaults are k = 20 and T = 0.07.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def knn_predict(train_features: Tensor, train_labels: Tensor, test_features: Tensor, k: int = 20,
                temperature: float = 0.07, num_classes: int | None = None, exclude_self: bool = False,
                chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Temperature-weighted k-NN votes by cosine similarity.

    Args:
        train_features: (N, D) the bank, any scale (L2-normalised here).
        train_labels: (N,) int64 in 0 .. K-1.
        test_features: (M, D) the queries, any scale.
        k: neighbours per query, 1 <= k <= N (k <= N - 1 with ``exclude_self``).
        temperature: T in the vote weights exp(similarity / T).
        num_classes: K (None: ``train_labels.max() + 1``).
        exclude_self: the queries ARE the bank (M == N, row m of both the same image): query m
            never counts itself (bank entry m) as a neighbour, however similar (leave-one-out).
            Only entry m is excluded; an exact duplicate elsewhere in the bank still counts.
        chunk_size: queries are processed this many at a time, so the (chunk, N) similarity
            matrix fits in memory; the result does not depend on it.

    Returns:
        scores (M, K) float32: the summed weights exp(s / T) of the k neighbours in each class,
        computed in float32 whatever the features' dtype (float16 features from a model under
        autocast would overflow: exp(0.99 / 0.07) = 1.4e6, float16 stops at 65504). K columns
        even when some class has no image in the bank (it scores 0).
        preds (M,) int64: ``scores.argmax(dim=1)``.

    Raises:
        ValueError: k < 1 or k larger than the bank allows; exclude_self with M != N.
    """
    ### BEGIN SOLUTION [Week 5 · Task 5.4]
    num_bank, num_queries = train_features.shape[0], test_features.shape[0]
    available = num_bank - 1 if exclude_self else num_bank
    if not 1 <= k <= available:
        raise ValueError(f"k={k}, but each query has {available} candidate neighbours")
    if exclude_self and num_queries != num_bank:
        raise ValueError(f"exclude_self needs the queries to be the bank: {num_queries} queries, "
                         f"{num_bank} bank entries")
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    bank = F.normalize(train_features.float(), dim=-1)  # (N, D)
    queries = F.normalize(test_features.float(), dim=-1)  # (M, D)
    scores = []
    for start in range(0, num_queries, chunk_size):
        sim = queries[start:start + chunk_size] @ bank.T  # (m, N) cosine similarities
        if exclude_self:
            rows = torch.arange(sim.shape[0])
            sim[rows, start + rows] = float("-inf")  # query start+r is bank entry start+r: never its own neighbour
        top_sim, top_index = sim.topk(k, dim=1)  # (m, k): the k most similar bank entries
        weights = (top_sim / temperature).exp()  # (m, k): a closer neighbour weighs exponentially more
        votes = F.one_hot(train_labels[top_index], num_classes).float()  # (m, k, K)
        scores.append((weights[..., None] * votes).sum(dim=1))  # (m, K)
    scores = torch.cat(scores)  # (M, K)
    return scores, scores.argmax(dim=1)
    ### END SOLUTION
