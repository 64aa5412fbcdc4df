"""Week 5 public tests: quick checks you can run while you work.

    vitgrade check 5            # a table with hints
    pytest tests/public/05_clip_dino

They check shapes, a few values you can work out by hand, and the errors. Passing them means the
basics are in place; the hidden tests (the loss and its gradients against open_clip's ClipLoss, the
zero-shot weights against open_clip's build_zero_shot_classifier, k-NN against a reference, frozen
and aligned features, the linear probe on synthetic features) decide the grade.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vitcourse.contrastive import clip_logits, clip_loss
from vitcourse.features import extract_features
from vitcourse.knn import knn_predict
from vitcourse.probe import linear_probe
from vitcourse.zeroshot import zero_shot_predict, zero_shot_weights


@pytest.mark.task("5.1")
def test_clip_logits_shape_and_scale():
    logits = clip_logits(torch.randn(3, 8), torch.randn(5, 8), 0.1)
    assert logits.shape == (3, 5), "clip_logits((B, E), (B', E)) -> (B, B')"
    assert logits.abs().max() <= 10 + 1e-4, "cosines lie in [-1, 1], so logits lie in [-1/T, 1/T]"


@pytest.mark.task("5.1")
def test_clip_loss_by_hand():
    same = torch.ones(4, 3)  # every image equals every text: nothing to tell apart
    loss = clip_loss(same, same, 0.07)
    assert loss.shape == (), "the loss is a 0-d tensor"
    assert math.isclose(float(loss), math.log(4), rel_tol=1e-5), "4 indistinguishable pairs: the loss is log 4"
    with pytest.raises(ValueError):
        clip_loss(torch.randn(4, 3), torch.randn(5, 3), 0.07)


@pytest.mark.task("5.2")
def test_extract_features_shapes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    loader = DataLoader(TensorDataset(torch.randn(7, 3, 2, 2), torch.arange(7)), batch_size=3)
    features, labels = extract_features(model, loader, progress=False)
    assert features.shape == (7, 5) and labels.shape == (7,), "features (N, D), labels (N,)"
    assert not features.requires_grad, "frozen features: no autograd graph (torch.no_grad())"
    assert labels.tolist() == list(range(7)), "the labels come from the loader, in its order"


@pytest.mark.task("5.3")
def test_zero_shot_shapes_and_units():
    table = {f"{t} {c}": torch.randn(6) * (i + 1) for i, (t, c) in
             enumerate((t, c) for t in ("a", "the") for c in ("cat", "dog", "owl"))}
    weights = zero_shot_weights(lambda texts: torch.stack([table[s] for s in texts]), ["cat", "dog", "owl"],
                                ["a {}", "the {}"])
    assert weights.shape == (3, 6), "zero_shot_weights -> (K, E)"
    torch.testing.assert_close(weights.norm(dim=1), torch.ones(3), msg="every class vector has unit norm")
    probs, preds = zero_shot_predict(torch.randn(4, 6), weights)
    assert probs.shape == (4, 3) and preds.shape == (4,), "probs (B, K), preds (B,)"
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4), msg="probabilities sum to 1 over the classes")


@pytest.mark.task("5.4")
def test_knn_by_hand():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = torch.tensor([0, 1, 0])
    scores, preds = knn_predict(bank, labels, torch.tensor([[2.0, 0.1]]), k=2, temperature=0.1)
    assert scores.shape == (1, 2) and preds.tolist() == [0], "scores (M, K), preds (M,)"
    expected = sum(math.exp(float(F.cosine_similarity(torch.tensor([2.0, 0.1]), b, dim=0)) / 0.1) for b in bank[[0, 2]])
    assert math.isclose(float(scores[0, 0]), expected, rel_tol=1e-4), "class 0's score: exp(cos / T) summed"
    assert float(scores[0, 1]) == 0.0, "class 1 has no neighbour among the top 2"
    with pytest.raises(ValueError):
        knn_predict(bank, labels, bank, k=4)


@pytest.mark.task("5.5")
def test_linear_probe_shape():
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    logits = linear_probe(x, y, x[:5], steps=3)
    assert logits.shape == (5, 3), "linear_probe returns (M, K) test logits"
