"""Week 7 hidden tests: Grad-CAM, FGSM/PGD, robustness curves, transfer, Fourier masks, shape bias, errors.

Every reference is computed here, in the grader's process, on the very weights the student's code was
given: ``pytorch_grad_cam.GradCAM`` (grad-cam 1.5.7) for the maps, ``torchattacks.FGSM`` / ``PGD``
(3.5.1) for the attacks, a small MLP the judge trains itself (deterministic, a fraction of a second)
for the properties an attack must have on a trained model, and references written from the formulas
for the rest. Weights, images and sizes of the comparisons are drawn from a seed chosen when the suite
starts, so no output can be written down in advance; the property tests use fixed seeds.
"""

import functools
import importlib.util
import math
import secrets
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, randomise, state, tensor_meta

RUN_SEED = secrets.randbelow(1_000_000)  # this grading run's inputs


@functools.cache
def probes():
    """This week's probes.py, imported here only for its model builders (the same architectures)."""
    spec = importlib.util.spec_from_file_location("week07_probe_models", Path(__file__).with_name("probes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model(kind: str, config: dict, seed: int) -> torch.nn.Module:
    """The judge's model: ``kind`` with ``config``, weights N(0, 0.2) from ``seed``, eval mode."""
    torch.manual_seed(seed)
    return randomise(probes().build(kind, config), seed)


def uniform(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


# ---------------------------------------------------------------- Task 7.1: Grad-CAM
RESNET = dict(num_classes=5, layers=(1, 1, 1, 1), channels=(8, 8, 8, 8))
VIT = dict(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, num_classes=5)


def reference_cam(net, layer: str, images, targets, prefix: int | None = None) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def reshape(tokens):  # pytorch-grad-cam's documented ViT transform, for any number of prefix tokens
        n = tokens.shape[1] - prefix
        side = int(round(math.sqrt(n)))
        return tokens[:, prefix:].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)

    net = net.eval()
    cam = GradCAM(net, [net.get_submodule(layer)], reshape_transform=reshape if prefix is not None else None)
    if targets is None:
        maps = cam(images, None)
    else:
        maps = cam(images, [ClassifierOutputTarget(int(t)) for t in targets])
    net.zero_grad(set_to_none=True)
    cam.activations_and_grads.release()
    return maps


def informative_targets(net, layer: str, images, prefix: int | None = None) -> torch.Tensor:
    """For each image a class whose reference map is not all zero (a ReLU can erase a whole map)."""
    best = torch.zeros(len(images), dtype=torch.long)
    found = torch.zeros(len(images), dtype=torch.bool)
    k = 0
    while not bool(found.all()) and k < 5:
        maps = reference_cam(net, layer, images, torch.full((len(images),), k), prefix)
        good = torch.as_tensor(maps.reshape(len(images), -1).max(1) > 0.5) & ~found
        best[good], found[good] = k, True
        k += 1
    return best


def student_cam(student, kind, config, net, images, targets, layer, prefix=None, training=True) -> dict:
    return student.probe("gradcam", kind=kind, config=config, state=state(net), images=images, targets=targets,
                         layer=layer, num_prefix_tokens=prefix, training=training)


@pytest.mark.task("7.1", points=1)
def test_vit_reshape_transform_drops_prefix_tokens_and_lays_out_the_grid(student):
    tokens = torch.randn(3, 2 + 6, 5, generator=torch.Generator().manual_seed(RUN_SEED))  # CLS, dist, 2 x 3 patches
    got = student.fn("gradcam.vit_reshape_transform", tokens, num_prefix_tokens=2, grid_size=(2, 3))
    expected = tokens[:, 2:].reshape(3, 2, 3, 5).permute(0, 3, 1, 2)
    assert_close(got, expected, "vit_reshape_transform of (3, 2 + 6, 5) tokens, 2 prefix tokens, grid (2, 3): "
                 "(B, D, h, w) with patch r * w + c at [:, :, r, c]", atol=0)
    square = torch.randn(2, 1 + 9, 4, generator=torch.Generator().manual_seed(RUN_SEED + 1))
    got = student.fn("gradcam.vit_reshape_transform", square)
    assert_close(got, square[:, 1:].reshape(2, 3, 3, 4).permute(0, 3, 1, 2),
                 "vit_reshape_transform of (2, 1 + 9, 4) tokens with the defaults (CLS dropped, square 3 x 3 grid)",
                 atol=0)
    student.raises(ValueError, "gradcam.vit_reshape_transform", torch.randn(2, 1 + 8, 4))  # 8 patches: no square


@pytest.mark.task("7.1", points=3)
@pytest.mark.parametrize("layer", ["layer2", "layer3"])
def test_gradcam_matches_pytorch_grad_cam_on_a_resnet(student, layer):
    net = model("resnet", RESNET, RUN_SEED % 1000)
    images = uniform(4, 3, 48, 40, seed=RUN_SEED)  # H != W: a swapped axis shows
    targets = informative_targets(net, layer, images)
    out = student_cam(student, "resnet", RESNET, net, images, targets, layer)
    assert_close(out["maps"], reference_cam(net, layer, images, targets), f"GradCAM at resnet.{layer} on 4 images "
                 "of 48 x 40 (given in train mode) vs pytorch_grad_cam.GradCAM", atol=1e-4, rtol=0)


@pytest.mark.task("7.1", points=3)
@pytest.mark.parametrize("kind,prefix", [("vit", 1), ("deit", 2)])
def test_gradcam_matches_pytorch_grad_cam_on_a_vit(student, kind, prefix):
    net = model(kind, VIT, RUN_SEED % 1000 + 1)
    images = uniform(3, 3, 16, 16, seed=RUN_SEED + 2)
    layer = "blocks.1.norm1"  # the last block's norm1: its patch tokens still reach the CLS output
    targets = informative_targets(net, layer, images, prefix)
    out = student_cam(student, kind, VIT, net, images, targets, layer, prefix)
    what = "CLS" if prefix == 1 else "CLS and distillation tokens"
    assert_close(out["maps"], reference_cam(net, layer, images, targets, prefix),
                 f"GradCAM at {kind}.blocks[-1].norm1 with vit_reshape_transform ({what} dropped) vs "
                 "pytorch_grad_cam.GradCAM with the same transform", atol=1e-4, rtol=0)


@pytest.mark.task("7.1", points=1)
def test_gradcam_without_targets_explains_the_predicted_class(student):
    net = model("resnet", RESNET, RUN_SEED % 1000 + 2)
    images = uniform(3, 3, 32, 32, seed=RUN_SEED + 3)
    out = student_cam(student, "resnet", RESNET, net, images, None, "layer2")
    assert_close(out["maps"], reference_cam(net, "layer2", images, None), "GradCAM(images, targets=None): the "
                 "map of each image's predicted class, as pytorch_grad_cam does", atol=1e-4, rtol=0)


@pytest.mark.task("7.1", points=1)
def test_gradcam_leaves_the_model_as_it_found_it(student):
    net = model("resnet", RESNET, RUN_SEED % 1000 + 3)
    images = uniform(2, 3, 32, 32, seed=RUN_SEED + 4)
    out = student_cam(student, "resnet", RESNET, net, images, torch.tensor([1, 2]), "layer2", training=True)
    maps = array(out["maps"])
    if maps.shape != (2, 32, 32) or maps.min() < 0 or maps.max() > 1 + 1e-6:
        raise AssertionError(f"maps must be (B, H, W) = (2, 32, 32) in [0, 1]; got {maps.shape} in "
                             f"[{maps.min():.3g}, {maps.max():.3g}]")
    meta = tensor_meta(out["maps"])
    if meta["requires_grad"] or meta["dtype"] != "torch.float32":
        raise AssertionError(f"the maps must be detached float32 tensors; got {meta['dtype']} with "
                             f"requires_grad={meta['requires_grad']} (grad_fn {meta['grad_fn']})")
    if not all(out["modes"]):
        raise AssertionError("a model given in train mode must be back in train mode (every submodule) afterwards")
    if out["hooks"]:
        raise AssertionError(f"{out['hooks']} hook(s) left on the model: remove the hook after the forward pass")
    if out["param_grads"]:
        raise AssertionError(f"Grad-CAM left .grad on {out['param_grads'][:3]}...: take the gradient of the layer's "
                             "output with torch.autograd.grad instead of loss.backward()")


# ---------------------------------------------------------------- Task 7.2: FGSM and PGD
CNN = dict(in_chans=3, width=6, num_classes=4)


def torchattacks_lib():
    import torchattacks

    return torchattacks


def reference_attack(name: str, net, images, labels, *, eps, alpha=None, steps=None, targeted=False, mean=None,
                     std=None):
    """torchattacks' FGSM / PGD (no random start) on pixel images, as pixel images."""
    ta = torchattacks_lib()
    atk = ta.FGSM(net, eps=eps) if name == "fgsm" else ta.PGD(net, eps=eps, alpha=alpha, steps=steps,
                                                             random_start=False)
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    if mean is None:
        return atk(images, labels)
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    atk.set_normalization_used(mean, std)  # torchattacks then takes and returns normalised images
    return atk((images - m) / s, labels) * s + m


def run_attack(student, name, net, images, labels, kwargs, kind="cnn", config=CNN, training=True, seed=0) -> dict:
    return student.probe("attack", attack_name=name, kind=kind, config=config, state=state(net), images=images,
                         labels=labels, kwargs=kwargs, training=training, seed=seed)


@pytest.mark.task("7.2", points=2)
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_torchattacks(student, targeted):
    net = model("cnn", CNN, RUN_SEED % 1000 + 10)
    images = uniform(5, 3, 6, 7, seed=RUN_SEED + 10)
    labels = torch.randint(0, 4, (5,), generator=torch.Generator().manual_seed(RUN_SEED))
    out = run_attack(student, "fgsm", net, images, labels, dict(eps=0.07, targeted=targeted))
    what = "targeted (labels are the targets)" if targeted else "untargeted"
    assert_close(out["adversarial"], reference_attack("fgsm", net, images, labels, eps=0.07, targeted=targeted),
                 f"fgsm, {what}, eps 0.07, on a CNN with batch norm and dropout given in train mode, vs "
                 "torchattacks.FGSM (which attacks in eval mode)", atol=1e-6)


@pytest.mark.task("7.2", points=3)
@pytest.mark.parametrize("targeted,normalised", [(False, False), (True, False), (False, True)])
def test_pgd_without_random_start_matches_torchattacks(student, targeted, normalised):
    net = model("cnn", CNN, RUN_SEED % 1000 + 11)
    images = uniform(4, 3, 5, 6, seed=RUN_SEED + 11)
    labels = torch.randint(0, 4, (4,), generator=torch.Generator().manual_seed(RUN_SEED + 1))
    stats = dict(mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25]) if normalised else {}
    kwargs = dict(eps=0.06, alpha=0.02, steps=5, random_start=False, targeted=targeted, **stats)
    out = run_attack(student, "pgd", net, images, labels, kwargs)
    expected = reference_attack("pgd", net, images, labels, eps=0.06, alpha=0.02, steps=5, targeted=targeted,
                                **stats)
    what = ("targeted" if targeted else "untargeted") + (", model expects (x - mean) / std" if normalised else "")
    assert_close(out["adversarial"], expected, f"pgd ({what}), eps 0.06, alpha 0.02, 5 steps, no random start, vs "
                 "torchattacks.PGD" + (" with set_normalization_used" if normalised else ""), atol=1e-5)


@pytest.mark.task("7.2", points=1)
@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_attacks_leave_the_model_as_they_found_it(student, name):
    net = model("cnn", CNN, RUN_SEED % 1000 + 12)
    images = uniform(3, 3, 5, 5, seed=RUN_SEED + 12)
    kwargs = dict(eps=0.05) if name == "fgsm" else dict(eps=0.05, alpha=0.02, steps=2)
    out = run_attack(student, name, net, images, torch.tensor([0, 1, 2]), kwargs, training=True)
    if not out["forward_modes"] or any(out["forward_modes"]):
        raise AssertionError(f"{name} ran the model in train mode (dropout on, batch statistics): put it in eval "
                             "mode for the attack")
    if not all(out["modes"]):
        raise AssertionError(f"{name} left a model given in train mode in eval mode: restore every submodule's mode")
    if out["param_grads"]:
        raise AssertionError(f"{name} left .grad on the model's parameters {out['param_grads'][:3]}: take the "
                             "gradient with respect to the images only (torch.autograd.grad)")
    meta = tensor_meta(out["adversarial"])
    if meta["requires_grad"] or meta["dtype"] != "torch.float32":
        raise AssertionError(f"{name} must return detached images in the input's dtype (float32), even when the "
                             f"images it was given require grad; got {meta['dtype']} with requires_grad="
                             f"{meta['requires_grad']} (grad_fn {meta['grad_fn']})")


@pytest.mark.task("7.2", points=2)
def test_attacks_stay_in_the_ball_and_the_valid_range(student):
    """Pixels at 0 and 1 and in between, a large step: only the projection and the clamp keep them legal."""
    net = model("cnn", CNN, RUN_SEED % 1000 + 13)
    images = uniform(4, 3, 6, 6, seed=RUN_SEED + 13)
    images[:, 0] = images[:, 0].round()  # a channel of exact 0s and 1s
    labels = torch.tensor([0, 1, 2, 3])
    for name, kwargs in (("fgsm", dict(eps=0.1)), ("pgd", dict(eps=0.1, alpha=0.07, steps=6, random_start=True))):
        adv = array(run_attack(student, name, net, images, labels, kwargs, seed=RUN_SEED)["adversarial"])
        delta = np.abs(adv - images.numpy())
        if delta.max() > 0.1 + 1e-6:
            raise AssertionError(f"{name} with eps 0.1: a pixel moved by {delta.max():.3g} > eps (the L-infinity ball "
                                 "around the clean image: project onto it after each step)")
        if adv.min() < 0 or adv.max() > 1:
            raise AssertionError(f"{name}: adversarial pixels in [{adv.min():.3g}, {adv.max():.3g}], outside the "
                                 "valid range [0, 1]: clamp")


@pytest.mark.task("7.2", points=1)
def test_fgsm_moves_interior_pixels_by_exactly_eps(student):
    net = model("cnn", CNN, RUN_SEED % 1000 + 14)
    images = 0.2 + 0.6 * uniform(3, 3, 6, 5, seed=RUN_SEED + 14)  # every pixel at least 0.2 from the edges
    labels = torch.tensor([3, 0, 1])
    adv = array(run_attack(student, "fgsm", net, images, labels, dict(eps=0.05))["adversarial"])
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(net.eval()(x), labels), x)
    moved = grad.numpy() != 0  # a pixel the loss does not depend on (a dead ReLU) stays put: sign(0) = 0
    delta = np.abs(adv - images.numpy())
    if moved.mean() < 0.5 or not np.allclose(delta[moved], 0.05, atol=1e-6):
        raise AssertionError(f"fgsm with eps 0.05 away from the edges: every pixel with a non-zero gradient moves by "
                             f"exactly eps (the sign of the gradient); they moved by [{delta[moved].min():.3g}, "
                             f"{delta[moved].max():.3g}]")


@pytest.mark.task("7.2", points=1)
def test_pgd_random_start_is_uniform_in_the_ball(student):
    """steps=0: the random start alone, clamped to the valid range."""
    net = model("cnn", CNN, 15)
    images = torch.full((4, 3, 16, 16), 0.5)
    adv = run_attack(student, "pgd", net, images, torch.tensor([0, 1, 2, 3]),
                     dict(eps=0.1, alpha=0.01, steps=0, random_start=True), seed=RUN_SEED)["adversarial"]
    delta = array(adv) - 0.5
    n = delta.size
    if np.abs(delta).max() > 0.1 + 1e-6:
        raise AssertionError(f"the random start must lie in the eps-ball: a pixel starts {np.abs(delta).max():.3g} "
                             "from the clean image, eps is 0.1 (uniform in [-eps, eps] per pixel)")
    inner = float(np.mean(np.abs(delta) < 0.05))
    if np.abs(delta).max() < 0.05 or not 0.4 < inner < 0.6 or abs(float(delta.mean())) > 0.01:
        raise AssertionError(f"the random start should be uniform in [-eps, eps] per pixel: over {n} pixels, "
                             f"{inner:.0%} lie within eps/2 (expected ~50%), mean {delta.mean():.3g} (expected ~0)")


@functools.cache
def trained_mlp():
    """A 3-class MLP trained here on 16-pixel images in [0, 1] (many at exactly 0 or 1), and held-out data."""
    gen = torch.Generator().manual_seed(7)
    centres = 0.15 + 0.7 * torch.rand(3, 16, generator=gen)

    def draw(n):
        labels = torch.arange(n) % 3
        images = (centres[labels] + 0.22 * torch.randn(n, 16, generator=gen)).clamp(0, 1)
        return images.reshape(n, 1, 4, 4), labels

    x, y = draw(300)
    torch.manual_seed(7)
    net = probes().build("mlp", dict(in_features=16, hidden=32, num_classes=3, drop=0.2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    net.eval()
    test_x, test_y = draw(150)
    return net, test_x, test_y


def accuracy(net, images, labels) -> float:
    with torch.no_grad():
        return float((net(torch.as_tensor(images, dtype=torch.float32)).argmax(1) == labels).float().mean())


@pytest.mark.task("7.2", points=2)
def test_attacks_on_a_trained_model(student):
    """Accuracy falls (never rises) with epsilon; PGD is at least as strong as FGSM; eps 0 is the clean image."""
    net, images, labels = trained_mlp()
    config = dict(in_features=16, hidden=32, num_classes=3, drop=0.2)
    epsilons = [0.0, 0.03, 0.06, 0.1, 0.15]
    kw = dict(kind="mlp", config=config, state=state(net), images=images, labels=labels, epsilons=epsilons)
    fgsm = student.probe("attack_sweep", attack_name="fgsm", kwargs={}, **kw)
    pgd = student.probe("attack_sweep", attack_name="pgd", kwargs=dict(steps=10, random_start=False), **kw)
    assert_close(fgsm[0], images, "fgsm at eps 0 must return the clean images", atol=0)
    assert_close(pgd[0], images, "pgd at eps 0 must return the clean images", atol=0)
    clean = accuracy(net, images, labels)
    acc_f = [accuracy(net, a, labels) for a in fgsm]
    acc_p = [accuracy(net, a, labels) for a in pgd]
    table = ", ".join(f"eps {e}: FGSM {f:.3f} PGD {p:.3f}" for e, f, p in zip(epsilons, acc_f, acc_p))
    if clean < 0.9 or not acc_f[-1] < clean - 0.2:
        raise AssertionError(f"on a trained MLP (clean accuracy {clean:.3f}) the attacks must hurt: {table}")
    if any(b > a + 1e-9 for a, b in zip(acc_f, acc_f[1:])) or any(b > a + 1e-9 for a, b in zip(acc_p, acc_p[1:])):
        raise AssertionError(f"accuracy must not rise with epsilon on this model: {table}")
    if any(p > f + 1e-9 for f, p in zip(acc_f, acc_p)):
        raise AssertionError(f"PGD (10 steps of eps/4) must be at least as strong as FGSM at every epsilon: {table}")


@pytest.mark.task("7.2", points=1)
def test_targeted_attacks_raise_the_target_probability(student):
    net, images, labels = trained_mlp()
    images, labels = images[:60], labels[:60]
    targets = (labels + 1) % 3
    config = dict(in_features=16, hidden=32, num_classes=3, drop=0.2)
    out = run_attack(student, "pgd", net, images, targets, dict(eps=0.1, steps=10, random_start=False, targeted=True),
                     kind="mlp", config=config, training=False)
    with torch.no_grad():
        before = net(images).softmax(1).gather(1, targets[:, None]).mean()
        after = net(torch.as_tensor(out["adversarial"])).softmax(1).gather(1, targets[:, None]).mean()
    if not float(after) > float(before) + 0.1:
        raise AssertionError(f"targeted PGD (eps 0.1) must raise the targets' mean probability: {float(before):.3f} "
                             f"before, {float(after):.3f} after")


@pytest.mark.task("7.2", points=1)
def test_attacks_reject_bad_inputs(student):
    images = torch.rand(2, 3, 4, 4)
    student.raises(ValueError, "attacks.fgsm", None, images * 2, torch.tensor([0, 1]), 0.1)
    student.raises(ValueError, "attacks.fgsm", None, images, torch.tensor([0, 1]), -0.1)


# ---------------------------------------------------------------- Task 7.3: robustness curves
MLP_SMALL = dict(in_features=12, hidden=10, num_classes=3, drop=0.5)


def shift(net, images, eps):
    return probes().shift_attack(net, images, None, eps)


@pytest.mark.task("7.3", points=2)
def test_robustness_curve_matches_the_judges_accuracies(student):
    epsilons = [0.0, 0.3, 0.1, 0.6]  # not sorted: the curve follows the given order
    for offset in range(50):  # a model whose answers the grader's attack changes (so the curve is not flat)
        net = model("mlp", MLP_SMALL, RUN_SEED % 1000 + 20 + offset)
        images = uniform(23, 3, 2, 2, seed=RUN_SEED + 20 + offset)
        with torch.no_grad():
            labels = net(images).argmax(1)  # every clean image right ...
            attacked = net(shift(net, images, 0.6)).argmax(1)
        labels[:3] = (labels[:3] + 1) % 3  # ... except three
        if int((attacked != labels).sum()) >= 6:
            break
    out = student.probe("curve", kind="mlp", config=MLP_SMALL, state=state(net), images=images, labels=labels,
                        epsilons=epsilons, batch_size=10, training=True)
    expected = [accuracy(net, shift(net, images, e), labels) for e in epsilons]
    assert_close(out["curve"], expected, f"robustness_curve over epsilons {epsilons} with the grader's attack, 23 "
                 "images in batches of 10 (model given in train mode, with dropout): accuracy of the model in eval "
                 "mode on the attacked images", atol=1e-6)
    sizes = [n for n, _ in out["calls"]]
    if sizes != [10, 10, 3] * 4:
        raise AssertionError(f"the attack must be called per batch of batch_size images for each epsilon; it was "
                             f"called with batches {sizes}")
    if not all(out["modes"]):
        raise AssertionError("a model given in train mode must be back in train mode afterwards")


@pytest.mark.task("7.3", points=1)
def test_robustness_curve_evaluates_in_eval_mode_without_gradients(student):
    net = model("mlp", MLP_SMALL, RUN_SEED % 1000 + 21)
    images = uniform(8, 3, 2, 2, seed=RUN_SEED + 21)
    labels = torch.zeros(8, dtype=torch.long)
    out = student.probe("curve", kind="mlp", config=MLP_SMALL, state=state(net), images=images, labels=labels,
                        epsilons=[0.0, 0.2], batch_size=64, training=True)
    if any(out["forward_modes"]):
        raise AssertionError("robustness_curve evaluated the model in train mode (dropout on): use eval mode")
    if out["param_grads"]:
        raise AssertionError("robustness_curve left gradients on the model's parameters")


@pytest.mark.task("7.3", points=2)
def test_curve_area_is_the_mean_accuracy_over_the_range(student):
    got = student.fn("robustness.curve_area", [0.0, 1.0, 3.0], [1.0, 0.5, 0.5])
    if not math.isclose(float(got), (0.75 + 1.0) / 3, abs_tol=1e-9):
        raise AssertionError(f"curve_area([0, 1, 3], [1, 0.5, 0.5]) = (0.75 + 2 * 0.5) / 3 = 0.5833 (trapezoids over "
                             f"the range, divided by the range); got {float(got):.4f}")
    eps = np.sort(np.random.default_rng(RUN_SEED).uniform(0, 0.1, 6))
    acc = np.random.default_rng(RUN_SEED + 1).uniform(0, 1, 6)
    got = student.fn("robustness.curve_area", torch.tensor(eps), torch.tensor(acc))
    expected = np.sum(np.diff(eps) * (acc[1:] + acc[:-1]) / 2) / (eps[-1] - eps[0])
    assert_close(float(got), expected, "curve_area of a random curve over 6 epsilons", atol=1e-9)
    if not math.isclose(float(student.fn("robustness.curve_area", [0.1, 0.2], [0.4, 0.4])), 0.4, abs_tol=1e-9):
        raise AssertionError("a flat curve at 0.4 has area 0.4 whatever its epsilon range")
    student.raises(ValueError, "robustness.curve_area", [0.0, 0.2, 0.1], [1.0, 0.5, 0.4])
    student.raises(ValueError, "robustness.curve_area", [0.0], [1.0])


# ---------------------------------------------------------------- Task 7.4: transfer
@pytest.mark.task("7.4", points=3)
def test_transfer_matrix_rows_are_sources_and_columns_targets(student):
    nets = [model("mlp", MLP_SMALL, RUN_SEED % 1000 + 30 + k) for k in range(3)]
    images = uniform(13, 3, 2, 2, seed=RUN_SEED + 30)
    with torch.no_grad():
        labels = nets[0](images).argmax(1)
    out = student.probe("transfer", kind="mlp", configs=[MLP_SMALL] * 3, states=[state(n) for n in nets],
                        images=images, labels=labels, eps=0.4, batch_size=5)
    expected = torch.tensor([[accuracy(t, shift(s, images, 0.4), labels) for t in nets] for s in nets])
    assert_close(out["matrix"], expected, "transfer_matrix of 3 models, eps 0.4, with the grader's attack: entry "
                 "[i, j] = accuracy of model j on the images attacked on model i", atol=1e-6)
    sources = sorted({s for s, _ in out["calls"]})
    if sources != [0, 1, 2]:
        raise AssertionError(f"every model must be attacked as a source (its own gradients); sources seen: {sources}")


# ---------------------------------------------------------------- Task 7.5: frequencies
def reference_mask(h: int, w: int, cutoff: float, band: str) -> np.ndarray:
    u = np.fft.fftfreq(h) * h
    v = np.fft.fftfreq(w) * w
    radius = np.sqrt(u[:, None] ** 2 + v[None, :] ** 2)
    return radius <= cutoff if band == "low" else radius > cutoff


@pytest.mark.task("7.5", points=2)
@pytest.mark.parametrize("size,cutoff", [((8, 6), 2.0), ((7, 10), 3.5), ((5, 5), 0.0)])
def test_fourier_mask_keeps_exactly_the_frequencies_asked_for(student, size, cutoff):
    for band in ("low", "high"):
        got = array(student.fn("robustness.fourier_mask", *size, cutoff, band))
        expected = reference_mask(*size, cutoff, band)
        if got.shape != expected.shape or not np.array_equal(got.astype(bool), expected):
            raise AssertionError(f"fourier_mask{size + (cutoff, band)}: expected (in fft2's unshifted layout, "
                                 f"radius in cycles per image, {'<=' if band == 'low' else '>'} {cutoff})\n"
                                 f"{expected.astype(int)}\ngot\n{got.astype(int) if got.ndim == 2 else got}")
    student.raises(ValueError, "robustness.fourier_mask", 4, 4, 1.0, "middle")


@pytest.mark.task("7.5", points=2)
def test_band_limit_filters_in_the_fourier_domain(student):
    x = torch.randn(2, 3, 8, 10, generator=torch.Generator().manual_seed(RUN_SEED + 40))
    low = torch.as_tensor(reference_mask(8, 10, 2.5, "low"))
    got = array(student.fn("robustness.band_limit", x, low))
    expected = np.fft.ifft2(np.fft.fft2(x.numpy().astype(np.float64)) * low.numpy()).real
    assert_close(got, expected, "band_limit of (2, 3, 8, 10) images with a low-pass mask (radius <= 2.5)", atol=1e-5)
    spectrum = np.abs(np.fft.fft2(got))
    if spectrum[..., ~low.numpy()].max() > 1e-4:
        raise AssertionError("band_limit left energy at frequencies outside the mask")
    high = array(student.fn("robustness.band_limit", x, ~low))
    assert_close(got + high, x, "band_limit(x, low) + band_limit(x, high) must give x back", atol=1e-5)
    student.raises(ValueError, "robustness.band_limit", x, torch.ones(10, 8, dtype=torch.bool))


@pytest.mark.task("7.5", points=2)
def test_band_limited_perturbation_has_norm_eps(student):
    direction = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(RUN_SEED + 41)).sign()
    direction[2] = 1.0  # a constant image: nothing left above frequency 0
    high = torch.as_tensor(reference_mask(8, 8, 1.5, "high"))
    got = array(student.fn("robustness.band_limited_perturbation", direction, high, 0.03))
    limited = np.fft.ifft2(np.fft.fft2(direction.numpy().astype(np.float64)) * high.numpy()).real
    peak = np.abs(limited).reshape(3, -1).max(1)
    expected = np.where(peak[:, None, None, None] > 1e-9, 0.03 * limited / np.maximum(peak, 1e-12)[:, None, None, None],
                        0.0)
    assert_close(got, expected, "band_limited_perturbation of random signs, high-pass (radius > 1.5), eps 0.03: the "
                 "band-limited direction scaled so that each image's largest |value| is eps (a constant image "
                 "has no high frequencies: zeros)", atol=1e-6)


# ---------------------------------------------------------------- Task 7.6: shape bias
@pytest.mark.task("7.6", points=2)
def test_shape_bias_on_hand_made_decisions(student):
    shape = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    texture = torch.tensor([1, 2, 3, 4, 5, 0, 0, 1, 3, 4])  # images 6 and 7: no conflict
    predictions = torch.tensor([0, 1, 3, 4, 5, 2, 0, 1, 2, 3])
    # conflict images 0-5 and 8-9: shape at 0, 1, 8, 9 (4), texture at 2, 3, 4 (3), neither at 5
    got = float(student.fn("errors.shape_bias", predictions, shape, texture))
    if not math.isclose(got, 4 / 7, abs_tol=1e-9):
        raise AssertionError(f"8 cue-conflict images (2 others have texture = shape and do not count): 4 decisions "
                             f"follow the shape, 3 the texture, 1 neither: shape bias 4 / 7 = 0.571; got {got:.4f}")
    none = float(student.fn("errors.shape_bias", torch.tensor([2, 2]), torch.tensor([0, 1]), torch.tensor([1, 0])))
    if not math.isnan(none):
        raise AssertionError(f"no decision follows either cue: the shape bias is undefined (NaN); got {none}")
    student.raises(ValueError, "errors.shape_bias", torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([1, 0]))


@pytest.mark.task("7.6", points=1)
def test_shape_bias_random_decisions(student):
    rng = np.random.default_rng(RUN_SEED)
    shape, texture, predictions = (torch.as_tensor(rng.integers(0, 4, 200)) for _ in range(3))
    conflict = shape != texture
    s = int(((predictions == shape) & conflict).sum())
    t = int(((predictions == texture) & conflict).sum())
    assert_close(float(student.fn("errors.shape_bias", predictions, shape, texture)), s / (s + t),
                 "shape_bias of 200 random decisions over 4 classes", atol=1e-9)


# ---------------------------------------------------------------- Task 7.7: error taxonomy
@pytest.mark.task("7.7", points=2)
def test_error_taxonomy_on_hand_made_predictions(student):
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    vit = torch.tensor([0, 2, 2, 1, 1, 0, 2, 1])  # wrong at 1, 3, 5, 6
    cnn = torch.tensor([1, 2, 2, 0, 0, 0, 1, 1])  # wrong at 0, 1, 4, 5, 6
    got = student.fn("errors.error_taxonomy", vit, cnn, labels)
    expected = {"only_vit_wrong": [3], "only_cnn_wrong": [0, 4], "both_wrong": [1, 5, 6], "same_mistake": [1, 5]}
    if not isinstance(got, dict) or set(got) != set(expected):
        raise AssertionError(f"error_taxonomy returns a dict with the keys {sorted(expected)}; got "
                             f"{sorted(got) if isinstance(got, dict) else type(got).__name__}")
    for key, indices in expected.items():
        value = np.asarray(got[key]).reshape(-1).tolist()
        if value != indices:
            raise AssertionError(f"error_taxonomy[{key!r}]: expected indices {indices} (sorted), got {value}")


@pytest.mark.task("7.7", points=2)
def test_confusion_matrix_rows_are_the_truth(student):
    rng = np.random.default_rng(RUN_SEED)
    labels, predictions = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    predictions[:3] = 4  # class 4 predicted, never true
    got = array(student.fn("errors.confusion_matrix", torch.as_tensor(predictions), torch.as_tensor(labels), 5))
    expected = np.zeros((5, 5))
    np.add.at(expected, (labels, predictions), 1)
    assert_close(got, expected, "confusion_matrix of 50 random predictions over 5 classes: [t, p] counts true class "
                 "t predicted as p", atol=0)
    student.raises(ValueError, "errors.confusion_matrix", torch.tensor([0, 5]), torch.tensor([0, 1]), 5)
