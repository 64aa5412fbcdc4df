"""vitcourse.checks: the notebooks' immediate checks say what their docstrings promise."""

from collections import OrderedDict

import torch
from torch import nn

from vitcourse.checks import compare, randomise, rel_error


def test_compare_verdicts(capsys):
    x = torch.randn(3, 4)
    assert compare("same", x, x.clone())
    assert not compare("off", x, x + 1e-3)
    assert not compare("shape", x, x.T)
    assert not compare("nan", x.clone().fill_(float("nan")), x)
    out = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] for line in out] == ["[ok  ", "[XX  ", "[shape", "[NaN "]
    assert rel_error(x, x) == 0.0


def test_randomise_moves_weights_far_from_the_initialisation():
    def block() -> nn.Module:
        return nn.Sequential(OrderedDict(fc=nn.Linear(64, 64), norm=nn.LayerNorm(64)))

    model = randomise(block().train(), seed=3)
    assert not model.training
    weight, bias, scale, shift = (p.detach() for p in model.parameters())
    assert 0.15 < float(weight.std()) < 0.25 and 0.1 < float(bias.std()) < 0.3
    assert abs(float(scale.mean()) - 1) < 0.05 and 0.05 < float(scale.std()) < 0.15
    assert abs(float(shift.mean())) < 0.08 and 0.1 < float(shift.std()) < 0.3  # a norm's bias: N(0, 0.2)
    again = randomise(block(), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
