"""Week 8 hidden tests: the Carlini-Wagner L2 attack (Task 8.1) and the significance tools (Task 8.2).

Everything graded is computed here, in the grader's process: the probes return the adversarial images the
student's attack made on a model whose parameters the judge chose (fresh ones in every run: ``SEED``), and
these tests measure margins, distances and success with the judge's own copy of that model. On a
two-class linear classifier the smallest L2 perturbation that reaches a margin kappa is known in closed
form: for an image at logit difference m > 0 and weight difference w, it is (m + kappa) / ||w||. Every
logit is negative there, so an attack that takes "the best other class" as a maximum over a vector with
the true class zeroed out (torchattacks' shortcut) sees a 0 that is no class. torchattacks' ``CW`` (fixed
c, no search) is the reference on a small MLP, where there is no closed form. Task 8.2's references are
scipy's ``binomtest`` (exact p-value, Wilson interval).
"""

import math
import secrets

import numpy as np
import pytest
import torch
from torch import nn

from vitgrade.hidden import StudentFailure, tensor_meta

SEED = secrets.randbelow(10**6)  # this run's models and images: nothing a submission could have stored
SHAPE = (3, 6, 6)
N_PIXELS = math.prod(SHAPE)
KAPPA = 4.0 + secrets.randbelow(200) / 100  # in [4, 6): far beyond what momentum overshoots by chance
_RUNS: dict = {}  # the student's attack, run once per problem and shared by the tests that read it


# ---------------------------------------------------------------- the judge's problems
def linear_problem(seed: int, batch: int = 10) -> dict:
    """A two-class linear model over 3x6x6 images and images at known distances from its boundary.

    w = W_1 - W_0 is the only direction that matters; the boundary passes through the grey image. Each
    image is a point of the boundary plus s * w / ||w||, |s| in [0.3, 0.7]: its distance to the boundary is |s|.
    """
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(N_PIXELS, generator=g)
    common = 0.3 * torch.randn(N_PIXELS, generator=g)  # added to both rows: changes no decision
    offset = -0.5 * w.sum()  # w . x + offset = 0 on the grey image
    base = -20 - 10 * torch.rand((), generator=g)  # every logit negative
    model = nn.Sequential(nn.Flatten(), nn.Linear(N_PIXELS, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([common - w / 2, common + w / 2]))
        model[1].bias.copy_(torch.stack([base, base + offset]))
    points = 0.4 + 0.2 * torch.rand(batch, N_PIXELS, generator=g)
    points = points - ((points @ w + offset) / w.norm() ** 2)[:, None] * w  # onto the boundary
    side = torch.where(torch.rand(batch, generator=g) < 0.5, -1.0, 1.0)
    distance = 0.3 + 0.4 * torch.rand(batch, generator=g)
    images = (points + (side * distance)[:, None] * w / w.norm()).reshape(batch, *SHAPE)
    assert 0.02 < float(images.min()) and float(images.max()) < 0.98, "the judge's images must lie inside the box"
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    return {"model": model.eval(), "state": {k: v.detach().clone() for k, v in model[1].state_dict().items()},
            "images": images, "labels": labels, "distance": distance, "w_norm": float(w.norm())}


def mlp_problem(seed: int, batch: int = 12, hidden: int = 32, num_classes: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(N_PIXELS, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * (0.3 if param.ndim == 2 else 0.5))
        model[3].weight.mul_(3)
    images = 0.2 + 0.6 * torch.rand(batch, *SHAPE, generator=g)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"model": model.eval(), "state": state, "images": images, "labels": labels}


def linear_state(problem: dict) -> dict:
    """The probe's model is Sequential(Flatten, Linear): its state dict names the Linear "1.weight"."""
    return {f"1.{k}": v for k, v in problem["state"].items()}


def run_attack(student, key: str, problem: dict, options: dict, kind: str = "linear", num_classes: int = 2,
               **extra) -> dict:
    if key not in _RUNS:
        state = linear_state(problem) if kind == "linear" else problem["state"]
        _RUNS[key] = student.probe("attack", kind=kind, state=state, images=problem["images"],
                                   labels=problem["labels"], options=options, num_classes=num_classes, **extra)
    return _RUNS[key]


def margins(model: nn.Module, adversarial, labels: torch.Tensor) -> torch.Tensor:
    """max_{i != y} Z_i - Z_y of the judge's model on the returned images (> 0: misclassified)."""
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(adversarial), dtype=torch.float32))
    real = logits.gather(1, labels[:, None]).squeeze(1)
    return logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1) - real


def distances(adversarial, images: torch.Tensor) -> torch.Tensor:
    return (torch.as_tensor(np.asarray(adversarial), dtype=torch.float32) - images).flatten(1).norm(dim=1)


def searched(student) -> tuple[dict, dict]:
    """kappa = 0 from c = 1e-3, far too small for any image: only the search over c can succeed."""
    problem = linear_problem(SEED)
    options = dict(kappa=0.0, initial_const=1e-3, binary_search_steps=6, steps=80, lr=1e-2)
    return problem, run_attack(student, "searched", problem, options)


def where(seed: int = SEED) -> str:
    return f"(the judge's model and images of this run: seed {seed})"


# ---------------------------------------------------------------- Task 8.1: Carlini-Wagner L2
def must_refuse(student, problem: dict, images: torch.Tensor, options: dict, what: str) -> None:
    try:
        student.probe("attack", kind="linear", state=linear_state(problem), images=images, labels=problem["labels"],
                      options=options, num_classes=2)
    except StudentFailure as failure:
        if failure.is_a(ValueError):
            return
        raise
    raise AssertionError(f"carlini_wagner_l2 accepted {what}: it must raise ValueError")


@pytest.mark.task("8.1", points=1)
def test_cw_rejects_images_outside_the_box_and_negative_kappa(student):
    problem = linear_problem(SEED + 4, batch=2)
    quick = {"steps": 1, "binary_search_steps": 1}
    must_refuse(student, problem, problem["images"] + 0.6, quick, "images with pixels above 1 (the attack works in the "
                "[0, 1] box; normalisation belongs inside the model)")
    must_refuse(student, problem, problem["images"] - 0.6, quick, "images with pixels below 0")
    must_refuse(student, problem, problem["images"], dict(quick, kappa=-0.5), "kappa = -0.5 (the confidence is >= 0)")


@pytest.mark.task("8.1", points=1)
def test_cw_returns_images_in_the_box_without_a_graph(student):
    problem, out = searched(student)
    adversarial = np.asarray(out["adversarial"])
    if adversarial.shape != tuple(problem["images"].shape):
        raise AssertionError(f"expected adversarial images of shape {tuple(problem['images'].shape)}, got "
                             f"{adversarial.shape}")
    saturated = linear_problem(SEED + 5, batch=4)
    g = torch.Generator().manual_seed(SEED + 5)
    saturated["images"] = (torch.rand(4, *SHAPE, generator=g) < 0.5).float()  # every pixel at 0 or 1
    with torch.no_grad():
        saturated["labels"] = saturated["model"](saturated["images"]).argmax(dim=1)
    pushed = run_attack(student, "saturated", saturated,
                        dict(initial_const=10.0, binary_search_steps=2, steps=30, lr=5e-2))
    for name, images in (("images at distance 0.3-0.7 from the boundary", adversarial),
                         ("images whose pixels are all 0 or 1", np.asarray(pushed["adversarial"]))):
        if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
            raise AssertionError(f"adversarial pixels must lie in [0, 1] (the tanh box): on {name} they range from "
                                 f"{images.min():.3g} to {images.max():.3g}")
    meta = tensor_meta(out["adversarial"])
    if meta["requires_grad"] or meta["grad_fn"] is not None:
        raise AssertionError(f"the returned images carry an autograd graph ({meta['grad_fn']}): return detached images")
    if meta["dtype"] != "torch.float32":
        raise AssertionError(f"float32 images in, float32 images out: got {meta['dtype']}")
    if not np.array_equal(np.asarray(out["images_after"]), problem["images"].numpy()):
        raise AssertionError("the input images were modified in place: the attack must leave them as they were")


@pytest.mark.task("8.1", points=2)
def test_cw_succeeds_where_it_must_by_searching_over_c(student):
    problem, out = searched(student)
    margin = margins(problem["model"], out["adversarial"], problem["labels"])
    fooled = int((margin > 0).sum())
    if fooled < len(margin):
        raise AssertionError(f"only {fooled} of {len(margin)} images are misclassified after the attack, on a linear "
                             "model whose boundary crosses the box (every image can be flipped), starting from "
                             "c = 1e-3 with 6 search steps: c must grow (x10) while no upper bound is known, and "
                             f"another class must beat the true one; the judge measured the margins {where()}")


@pytest.mark.task("8.1", points=3)
def test_cw_perturbation_is_the_smallest_possible_on_a_linear_model(student):
    problem, out = searched(student)
    margin = margins(problem["model"], out["adversarial"], problem["labels"])
    norm = distances(out["adversarial"], problem["images"])
    ratio = norm / problem["distance"]
    fooled = margin > 0
    if not bool(fooled.any()):
        raise AssertionError("no image was misclassified: nothing to measure")
    worst = float(ratio[fooled].max())
    if worst > 1.10 or float(ratio[fooled].min()) < 0.999:
        raise AssertionError(f"on a linear model the smallest perturbation that flips an image is its distance to the "
                             f"boundary; the attack's L2 norms are {float(ratio[fooled].min()):.3f} to {worst:.3f} "
                             f"times that (allowed 1.00 to 1.10) {where()}: keep the closest adversarial image of "
                             "the whole search, minimise the squared distance plus c * f, start w at atanh(2x - 1)")


@pytest.mark.task("8.1", points=2)
def test_cw_larger_kappa_gives_a_larger_margin(student):
    problem = linear_problem(SEED + 1)
    options = dict(kappa=KAPPA, initial_const=1e-2, binary_search_steps=6, steps=80, lr=1e-2)
    out = run_attack(student, "kappa", problem, options)
    _, plain = searched(student)
    plain_problem = linear_problem(SEED)
    margin = margins(problem["model"], out["adversarial"], problem["labels"])
    low = float(margin.min())
    if low < KAPPA - 1e-3:
        raise AssertionError(f"with kappa = {KAPPA:.2f} every adversarial image must be misclassified by a margin "
                             f"of at least kappa (another class ahead by kappa); the smallest margin the judge "
                             f"measured is {low:.3f} {where(SEED + 1)}")
    plain_margin = margins(plain_problem["model"], plain["adversarial"], plain_problem["labels"])
    if float(margin.mean()) < float(plain_margin.mean()) + 0.5 * KAPPA:
        raise AssertionError(f"mean margin {float(margin.mean()):.3f} at kappa = {KAPPA:.2f} vs "
                             f"{float(plain_margin.mean()):.3f} at kappa = 0: a larger kappa must give a larger margin")
    norm = distances(out["adversarial"], problem["images"])
    closed = problem["distance"] + KAPPA / problem["w_norm"]  # (m + kappa) / ||w||
    ratio = norm / closed
    if float(ratio.max()) > 1.10:
        raise AssertionError(f"at kappa = {KAPPA:.2f} the smallest perturbation is (m + kappa) / ||w||; the attack's "
                             f"L2 norms are up to {float(ratio.max()):.3f} times that (allowed 1.10) {where(SEED + 1)}")


@pytest.mark.task("8.1", points=2)
def test_cw_leaves_the_model_as_it_found_it(student):
    problem = linear_problem(SEED + 2, batch=4)
    grads = {"body.1.weight": torch.full((2, N_PIXELS), 0.25), "body.1.bias": torch.tensor([0.5, -0.5])}
    state = {f"1.{k}": v for k, v in problem["state"].items()}
    out = student.probe("attack", kind="linear", state=state, images=problem["images"], labels=problem["labels"],
                        options=dict(initial_const=1.0, binary_search_steps=2, steps=5), num_classes=2,
                        dropout=0.3, train=True, preset_grads=grads)
    modes = out["modes"]
    if not modes:
        raise AssertionError("the model was never called")
    if any(modes):
        raise AssertionError(f"{sum(modes)} of {len(modes)} forward passes ran in training mode (dropout on): attack "
                             "the model in eval mode")
    if not out["training_after"]:
        raise AssertionError("the model was in training mode before the attack and in eval mode after it: restore "
                             "its mode (also when the attack raises)")
    for name, expected in grads.items():
        got = np.asarray(out["grads"][name])
        if got.shape != tuple(expected.shape) or not np.array_equal(got, expected.numpy()):
            raise AssertionError(f"the attack changed {name}.grad: differentiate with respect to w only "
                                 "(torch.autograd.grad), never call backward() into the model's parameters")
    if not all(out["requires_grad"].values()):
        raise AssertionError("the model's parameters no longer require grad after the attack: leave them as they were")


@pytest.mark.task("8.1", points=2)
def test_cw_is_at_least_as_strong_as_torchattacks(student):
    import torchattacks

    problem = mlp_problem(SEED + 3)
    options = dict(kappa=0.0, initial_const=0.1, binary_search_steps=4, steps=60, lr=1e-2)
    out = run_attack(student, "mlp", problem, options, kind="mlp", num_classes=4, hidden=32)
    torch.manual_seed(0)
    theirs = torchattacks.CW(problem["model"], c=1, kappa=0, steps=200, lr=0.01)(problem["images"], problem["labels"])
    ours_margin = margins(problem["model"], out["adversarial"], problem["labels"])
    their_margin = margins(problem["model"], theirs, problem["labels"])
    ours_fooled, their_fooled = ours_margin > 0, their_margin > 0
    if int(ours_fooled.sum()) < int(their_fooled.sum()):
        raise AssertionError(f"the attack fools {int(ours_fooled.sum())} of 12 images of a small MLP; torchattacks' CW "
                             f"(c = 1, no search) fools {int(their_fooled.sum())} {where(SEED + 3)}")
    both = ours_fooled & their_fooled
    if bool(both.any()):
        ratio = distances(out["adversarial"], problem["images"])[both] / distances(theirs, problem["images"])[both]
        if float(ratio.median()) > 1.05:
            raise AssertionError(f"on the images both attacks fool, the attack's perturbations are "
                                 f"{float(ratio.median()):.3f} times torchattacks' CW (c = 1, no search), median; "
                                 f"with a search over c they should be no larger (allowed 1.05) {where(SEED + 3)}")


# ---------------------------------------------------------------- Task 8.2: McNemar and Wilson
def predictions(seed: int, n: int = 60, k: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(k, (n,), generator=g)
    vit = torch.where(torch.rand(n, generator=g) < 0.75, labels, torch.randint(k, (n,), generator=g))
    cnn = torch.where(torch.rand(n, generator=g) < 0.65, labels, torch.randint(k, (n,), generator=g))
    return labels, vit, cnn


@pytest.mark.task("8.2", points=3)
@pytest.mark.parametrize("case", range(4))
def test_mcnemar_matches_scipy(student, case):
    from scipy.stats import binomtest

    labels, vit, cnn = predictions(SEED + 20 + case, n=40 + 15 * case)
    if case == 3:  # equal numbers of discordant images: p = 1
        cnn = vit.clone()
    got = student.fn("significance.mcnemar_test", labels, vit, cnn)
    a_wrong, b_wrong = vit != labels, cnn != labels
    b, c = int((a_wrong & ~b_wrong).sum()), int((b_wrong & ~a_wrong).sum())
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    if (float(got["b"]), float(got["c"])) != (b, c):
        raise AssertionError(f"b (only A wrong) and c (only B wrong): expected {b} and {c}, got {got['b']} and "
                             f"{got['c']}")
    if not math.isclose(float(got["p_value"]), expected, rel_tol=1e-6, abs_tol=1e-12):
        raise AssertionError(f"McNemar's exact two-sided p-value for b = {b}, c = {c}: scipy's binomtest gives "
                             f"{expected:.6g}, got {float(got['p_value']):.6g}")


@pytest.mark.task("8.2", points=3)
@pytest.mark.parametrize("k, n, confidence", [(57, 60, 0.95), (0, 25, 0.95), (31, 31, 0.9), (400, 1000, 0.99)])
def test_wilson_interval_matches_scipy(student, k, n, confidence):
    from scipy.stats import binomtest

    low, high = student.fn("significance.wilson_interval", k, n, confidence)
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    for value, expected in ((low, ref.low), (high, ref.high)):
        if not math.isclose(float(value), expected, rel_tol=1e-6, abs_tol=1e-9):
            raise AssertionError(f"Wilson interval of {k}/{n} at {confidence:.0%}: scipy gives ({ref.low:.6f}, "
                                 f"{ref.high:.6f}), got ({float(low):.6f}, {float(high):.6f})")


@pytest.mark.task("8.2", points=1)
def test_significance_rejects_bad_input(student):
    labels, vit, cnn = predictions(SEED + 30)
    student.raises(ValueError, "significance.mcnemar_test", labels, vit[:-1], cnn)
    student.raises(ValueError, "significance.mcnemar_test", labels[:, None], vit[:, None], cnn[:, None])
    student.raises(ValueError, "significance.wilson_interval", 5, 0)
    student.raises(ValueError, "significance.wilson_interval", 7, 5)
