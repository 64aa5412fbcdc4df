"""Week 8 public tests: quick checks you can run while you work.

    vitgrade check 8            # a table with hints
    pytest tests/public/08_archaeology

They check shapes, the box, a flip on a model where one is easy, the model's mode, and a few values you
can work out by hand. Passing them means the basics are in place; the hidden tests (the smallest
perturbation on a linear model against its closed form, the margin kappa buys, a too-small starting c,
torchattacks' CW as a baseline, McNemar and Wilson against scipy) decide the grade.
"""

import math

import pytest
import torch
from torch import nn

from vitcourse.cw import carlini_wagner_l2
from vitcourse.significance import mcnemar_test, wilson_interval


def two_class_linear() -> nn.Module:
    """logit 1 - logit 0 = 4 * (mean pixel - 0.5): grey images sit on the boundary."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(12), torch.full((12,), 4 / 12)]))
        model[1].bias.copy_(torch.tensor([0.0, -2.0]))
    return model


@pytest.mark.task("8.1")
def test_cw_flips_an_easy_model_inside_the_box():
    model = two_class_linear()
    images = torch.full((3, 3, 2, 2), 0.6)  # class 1, at distance 0.1 * sqrt(12) = 0.35 from the boundary
    labels = torch.ones(3, dtype=torch.long)
    adversarial = carlini_wagner_l2(model, images, labels, initial_const=1.0, binary_search_steps=4, steps=100)
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1, "the tanh box keeps every pixel in [0, 1]"
    assert not adversarial.requires_grad, "return detached images"
    assert (model(adversarial).argmax(dim=1) == 0).all(), "every image should now be class 0"
    distance = (adversarial - images).flatten(1).norm(dim=1)
    assert (distance < 0.5).all(), f"the boundary is 0.35 away; the attack went {distance.tolist()}"


@pytest.mark.task("8.1")
def test_cw_restores_the_model_mode_and_rejects_bad_input():
    model = two_class_linear().train()
    images, labels = torch.full((1, 3, 2, 2), 0.6), torch.ones(1, dtype=torch.long)
    carlini_wagner_l2(model, images, labels, binary_search_steps=1, steps=2)
    assert model.training, "the model was in training mode before the attack: give it back that way"
    assert all(p.grad is None for p in model.parameters()), "the attack must not leave gradients on the model"
    with pytest.raises(ValueError):
        carlini_wagner_l2(model, images * 2, labels)  # pixels outside [0, 1]
    with pytest.raises(ValueError):
        carlini_wagner_l2(model, images, labels, kappa=-1.0)


@pytest.mark.task("8.2")
def test_mcnemar_by_hand():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    vit = torch.tensor([0, 1, 0, 1, 1, 2])  # wrong on 2, 3
    cnn = torch.tensor([1, 1, 0, 0, 0, 2])  # wrong on 0, 2, 4: only the ViT wrong on 3, only the CNN on 0 and 4
    result = mcnemar_test(labels, vit, cnn)
    assert (result["b"], result["c"]) == (1, 2)
    assert math.isclose(result["p_value"], 1.0), "b = 1, c = 2: p = min(1, 2 * P(X <= 1)), X ~ Bin(3, 1/2)"
    five_to_none = mcnemar_test(torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.long),
                                torch.zeros(5, dtype=torch.long))
    assert math.isclose(five_to_none["p_value"], 2 / 32), "b = 5, c = 0: p = 2 * (1/2)^5"


@pytest.mark.task("8.2")
def test_wilson_interval_by_hand():
    low, high = wilson_interval(0, 10)
    assert abs(low) < 1e-12 and 0.25 < high < 0.32, "0 of 10: the Wilson interval is (0, 0.278) at 95 %"
    low, high = wilson_interval(50, 100)
    assert math.isclose(low + high, 1.0), "50 of 100: symmetric around 0.5"
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
