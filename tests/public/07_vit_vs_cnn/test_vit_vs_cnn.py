"""Week 7 public tests: quick checks you can run while you work.

    vitgrade check 7            # a table with hints
    pytest tests/public/07_vit_vs_cnn

They check shapes, ranges, values you can work out by hand and the errors. Passing them means the
basics are in place; the hidden tests (Grad-CAM against pytorch_grad_cam on a ResNet and on ViTs,
FGSM and PGD against torchattacks, the attacks' properties on a trained model, the curve, the transfer
matrix and the Fourier masks against the judge's own computation) decide the grade.
"""

import math

import pytest
import torch
from torch import nn

from vitcourse.attacks import fgsm, pgd
from vitcourse.errors import confusion_matrix, error_taxonomy, shape_bias
from vitcourse.gradcam import GradCAM, vit_reshape_transform
from vitcourse.robustness import (
    band_limit,
    band_limited_perturbation,
    curve_area,
    fourier_mask,
    robustness_curve,
    transfer_matrix,
)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


@pytest.mark.task("7.1")
def test_vit_reshape_transform_shape():
    tokens = torch.randn(2, 1 + 16, 8)
    grid = vit_reshape_transform(tokens)
    assert grid.shape == (2, 8, 4, 4), "(B, 1 + 16, D) -> (B, D, 4, 4): CLS dropped, patches on their grid"
    assert torch.equal(grid[:, :, 0, 1], tokens[:, 2]), "patch 1 (the second patch token) sits at row 0, column 1"


@pytest.mark.task("7.1")
def test_gradcam_maps_are_in_unit_range():
    model = tiny_cnn()
    maps = GradCAM(model, model[2])(torch.rand(2, 3, 8, 10), torch.tensor([0, 2]))
    assert maps.shape == (2, 8, 10), "one (H, W) map per image"
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6, "maps are scaled to [0, 1]"
    assert not maps.requires_grad, "maps are detached"


@pytest.mark.task("7.2")
def test_fgsm_and_pgd_stay_in_the_ball():
    model, images, labels = tiny_cnn(), torch.rand(3, 3, 6, 6), torch.tensor([0, 1, 2])
    for adversarial in (fgsm(model, images, labels, 0.03), pgd(model, images, labels, 0.03, 0.01, 3)):
        assert adversarial.shape == images.shape
        assert float((adversarial - images).abs().max()) <= 0.03 + 1e-6, "|x' - x| <= eps"
        assert 0 <= float(adversarial.min()) and float(adversarial.max()) <= 1, "x' in [0, 1]"
    assert torch.equal(fgsm(model, images, labels, 0.0), images), "eps 0 leaves the images alone"
    with pytest.raises(ValueError):
        fgsm(model, images * 3, labels, 0.03)  # not in [0, 1]


@pytest.mark.task("7.2")
def test_attacks_restore_the_model():
    model = tiny_cnn().train()
    pgd(model, torch.rand(2, 3, 6, 6), torch.tensor([0, 1]), 0.03, 0.01, 2)
    assert model.training, "a model given in train mode is back in train mode"
    assert all(p.grad is None for p in model.parameters()), "no .grad left on the parameters"


@pytest.mark.task("7.3")
def test_curve_and_area_by_hand():
    assert math.isclose(curve_area([0.0, 1.0, 3.0], [1.0, 0.5, 0.5]), (0.75 + 1.0) / 3), \
        "trapezoids (0.75 + 2 * 0.5) divided by the range 3"
    model, images = tiny_cnn(), torch.rand(5, 3, 6, 6)
    labels = model(images).argmax(1)
    leave_alone = lambda m, x, y, eps, **kw: x  # an "attack" that changes nothing
    curve = robustness_curve(model, images, labels, [0.0, 0.1], leave_alone)
    assert curve.shape == (2,) and torch.allclose(curve, torch.ones(2)), "nothing changed: accuracy 1 everywhere"


@pytest.mark.task("7.4")
def test_transfer_matrix_shape():
    models, images = [tiny_cnn(), tiny_cnn()], torch.rand(4, 3, 6, 6)
    matrix = transfer_matrix(models, images, torch.tensor([0, 1, 2, 0]), 0.03, fgsm)
    assert matrix.shape == (2, 2), "(sources, targets)"
    assert float(matrix.min()) >= 0 and float(matrix.max()) <= 1, "accuracies"


@pytest.mark.task("7.5")
def test_fourier_masks_split_the_spectrum():
    low, high = fourier_mask(8, 8, 2.0, "low"), fourier_mask(8, 8, 2.0, "high")
    assert low.shape == (8, 8) and low.dtype == torch.bool
    assert bool(low[0, 0]) and not bool(high[0, 0]), "the constant term (frequency 0, at [0, 0]) is low"
    assert torch.equal(low, ~high), "low and high are complements"
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(band_limit(x, low) + band_limit(x, high), x, atol=1e-5), "the two bands add up to x"
    delta = band_limited_perturbation(torch.randn(2, 3, 8, 8).sign(), high, 0.05)
    assert torch.allclose(delta.abs().amax(dim=(1, 2, 3)), torch.full((2,), 0.05)), "L-infinity norm eps per image"


@pytest.mark.task("7.6")
def test_shape_bias_by_hand():
    # three conflict images: one shape decision, one texture decision, one neither
    assert math.isclose(shape_bias(torch.tensor([0, 2, 3]), torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])), 0.5)


@pytest.mark.task("7.7")
def test_taxonomy_and_confusion_by_hand():
    labels, vit, cnn = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), torch.tensor([1, 0, 1])
    taxonomy = error_taxonomy(vit, cnn, labels)
    assert taxonomy["only_cnn_wrong"].tolist() == [0] and taxonomy["both_wrong"].tolist() == [1]
    assert taxonomy["only_vit_wrong"].tolist() == []
    matrix = confusion_matrix(vit, labels, 2)
    assert matrix.tolist() == [[1, 0], [1, 1]], "rows: the true class, columns: the prediction"
