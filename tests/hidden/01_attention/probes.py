"""Week 1 probes: run in the sandboxed worker with the student's vitcourse package.

They train and return what was trained; they never judge. The hidden tests recompute every number
they grade from the returned parameters, in the grader's process.
"""

import torch
from torch import nn


def reverse_task(eval_x: torch.Tensor, steps: int = 500, batch: int = 32, length: int = 10,
                 dim: int = 64, heads: int = 4, lr: float = 1e-3) -> dict:
    """Train the student's MultiHeadAttention to reverse sequences; return its trained parameters,
    the learned positions and its eval predictions.

    Learned positions (std 1) go into the query and key inputs only: values carry the raw
    tokens, so the output can be an exact copy of the token attended to.
    """
    from vitcourse.attention import MultiHeadAttention

    mha = MultiHeadAttention(dim, heads, dropout=0.0)
    pos = nn.Parameter(torch.randn(length, dim))
    opt = torch.optim.Adam(list(mha.parameters()) + [pos], lr=lr)
    for _ in range(steps):
        x = torch.randn(batch, length, dim)
        qk = x + pos
        out, _ = mha(qk, qk, x)
        loss = nn.functional.mse_loss(out, x.flip(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    mha.eval()
    with torch.no_grad():
        qk = eval_x + pos
        out, weights = mha(qk, qk, eval_x)
    return {"state": {k: v.detach() for k, v in mha.state_dict().items()}, "pos": pos.detach(),
            "output": out, "weights": weights}
