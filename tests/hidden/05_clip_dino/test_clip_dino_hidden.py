"""Week 5 hidden tests: the CLIP loss, frozen features, zero-shot weights, k-NN and the linear probe.

References are computed here, in the grader's process: open_clip 3.3.0's ``ClipLoss`` (which takes
unit features and ``logit_scale = 1 / temperature``) and ``build_zero_shot_classifier`` (with a fake
model whose text tower looks prompts up in a table), and, for k-NN and the probe, vectorised
references written from the formulas. Feature norms are deliberately far from 1, so a missing
normalisation shows; every batch size, class count and width differ, so a transposed axis shows.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, rand, tensor_meta


def meta_of(value, what: str) -> dict:
    """The facts the worker's wire recorded with a tensor (dtype, graph, device, shape)."""
    try:
        return tensor_meta(value)
    except KeyError:
        raise AssertionError(f"{what}: expected a torch tensor, got {type(value).__name__}") from None


def open_clip_lib():
    """open_clip, imported on first use (the grader preloads it; a local run pays once)."""
    import open_clip

    return open_clip


def scaled(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Rows of x multiplied by norms spread over 0.2 .. 20: normalising is not optional."""
    gen = torch.Generator().manual_seed(seed)
    return x * (0.2 * 100 ** torch.rand(x.shape[0], 1, generator=gen))


def scalar(value, what: str) -> float:
    """A 0-d result (the wire carries it as one element)."""
    array = np.asarray(value)
    if array.size != 1:
        raise AssertionError(f"{what}: expected a single number (a 0-d tensor), got shape {array.shape}")
    return float(array.reshape(()))


def reference_loss(image: torch.Tensor, text: torch.Tensor, temperature) -> torch.Tensor:
    loss = open_clip_lib().ClipLoss()
    return loss(F.normalize(image, dim=-1), F.normalize(text, dim=-1), logit_scale=1 / temperature)


# ---------------------------------------------------------------- Task 5.1: the CLIP loss
@pytest.mark.task("5.1", points=1)
def test_clip_logits_are_cosines_over_temperature(student):
    image, text = scaled(rand(4, 6, seed=1), 2), scaled(rand(5, 6, seed=3), 4)
    logits = student.fn("contrastive.clip_logits", image, text, 0.5)
    expected = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / 0.5
    assert_close(logits, expected, "clip_logits of 4 images and 5 texts (E=6), temperature 0.5: "
                 "cos(image i, text j) / temperature in row i, column j")


@pytest.mark.task("5.1", points=3)
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.07])
def test_clip_loss_matches_open_clip(student, temperature):
    image, text = scaled(rand(7, 5, seed=5), 6), scaled(rand(7, 5, seed=7), 8)
    loss = scalar(student.fn("contrastive.clip_loss", image, text, temperature), "clip_loss")
    expected = reference_loss(image, text, temperature)
    assert_close(loss, expected, f"clip_loss of 7 pairs at temperature {temperature} vs open_clip's ClipLoss on "
                 f"the normalised features with logit_scale = 1/{temperature}")


@pytest.mark.task("5.1", points=1)
def test_clip_loss_is_symmetric(student):
    image, text = scaled(rand(6, 4, seed=9), 10), scaled(rand(6, 4, seed=11), 12)
    forward = scalar(student.fn("contrastive.clip_loss", image, text, 0.2), "clip_loss")
    swapped = scalar(student.fn("contrastive.clip_loss", text, image, 0.2), "clip_loss")
    assert_close(forward, swapped, "clip_loss(images, texts) and clip_loss(texts, images): the two directions "
                 "are averaged, so swapping the inputs changes nothing")


@pytest.mark.task("5.1", points=1)
def test_clip_loss_vanishes_for_perfect_pairs_at_low_temperature(student):
    pairs = torch.eye(5, 8) * torch.tensor([[0.3], [1.0], [4.0], [0.5], [9.0]])  # orthogonal, any norm
    loss = scalar(student.fn("contrastive.clip_loss", pairs, 2 * pairs, 0.01), "clip_loss")
    if not 0 <= loss < 1e-4:
        raise AssertionError(f"5 orthogonal pairs (each image equal to its text up to scale) at temperature 0.01 "
                             f"must give a loss ~0; got {loss:.3g}")


@pytest.mark.task("5.1", points=1)
@pytest.mark.parametrize("cosine", [0.0, 0.3])
def test_clip_loss_is_log_n_when_all_texts_are_equal(student, cosine):
    """Every image equally similar to the one text: nothing to pick, the loss is log N at any temperature."""
    n, e = 6, 9
    text = torch.zeros(n, e)
    text[:, 0] = 3.0  # all texts the same vector, e_0
    others = torch.eye(e)[1:n + 1]  # orthonormal, orthogonal to e_0
    image = (cosine * torch.eye(e)[0] + (1 - cosine**2) ** 0.5 * others) * torch.arange(1, n + 1.0)[:, None]
    loss = scalar(student.fn("contrastive.clip_loss", image, text, 0.07), "clip_loss")
    assert_close(loss, np.log(n), f"clip_loss when all 6 texts are equal and every image has cosine {cosine} with "
                 "them: log 6")


@pytest.mark.task("5.1", points=1)
def test_clip_loss_rejects_bad_inputs(student):
    reason = student.raises(ValueError, "contrastive.clip_loss", rand(4, 3), rand(5, 3), 0.1)
    if "4" not in reason or "5" not in reason:
        raise AssertionError(f"the error should name both batch sizes (4 images, 5 texts); it says: {reason}")
    student.raises(ValueError, "contrastive.clip_loss", rand(4, 3), rand(4, 3), 0.0)
    student.raises(ValueError, "contrastive.clip_loss", rand(4, 3), rand(4, 3), -0.1)


@pytest.mark.task("5.1", points=2)
def test_clip_loss_gradients_match_open_clip(student):
    """The learnable temperature: a 0-d tensor that must receive its gradient (CLIP learns it)."""
    image, text = scaled(rand(5, 4, seed=13), 14), scaled(rand(5, 4, seed=15), 16)
    got = student.probe("clip_loss_grads", image=image, text=text, temperature=0.3)
    image_ref, text_ref = image.clone().requires_grad_(True), text.clone().requires_grad_(True)
    temp_ref = torch.tensor(0.3, requires_grad=True)
    reference_loss(image_ref, text_ref, temp_ref).backward()
    for name, ref in (("image features", image_ref.grad), ("text features", text_ref.grad),
                      ("temperature", temp_ref.grad)):
        key = name.split()[0]
        if got[key].size == 0:
            raise AssertionError(f"no gradient reached the {name}: is it detached (e.g. float(temperature) in the "
                                 "formula, or .detach())?")
        if key == "temperature":
            got[key] = scalar(got[key], "the temperature's gradient")
        assert_close(got[key], ref, f"gradient of clip_loss w.r.t. the {name} vs open_clip's ClipLoss", atol=1e-5)


# ---------------------------------------------------------------- Task 5.2: frozen features
def distinct_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n (1, 2, 3) images whose pixels identify them, and labels that are not their order."""
    images = rand(n, 1, 2, 3, seed=seed)
    labels = (torch.arange(n) * 7 + 3) % 5
    return images, labels


def match_rows(features: np.ndarray, images: torch.Tensor, factor: float = 1.0) -> list[int]:
    """For each returned feature row, the index of the image it came from (-1: none)."""
    flat = factor * images.flatten(1).numpy()
    return [int(np.argmin(np.abs(flat - row).max(1))) if np.abs(flat - row).max(1).min() < 1e-5 else -1
            for row in features]


@pytest.mark.task("5.2", points=2)
@pytest.mark.parametrize("shuffle", [False, True])
def test_features_and_labels_stay_aligned(student, shuffle):
    images, labels = distinct_images(10, seed=21)
    out = student.probe("extract_features", images=images, labels=labels, batch_size=4, shuffle=shuffle)
    features, got_labels = np.asarray(out["features"]), np.asarray(out["labels"])
    if features.shape != (10, 6) or got_labels.shape != (10,):
        raise AssertionError(f"10 images of 1x2x3 in batches of 4 (the last one of 2): expected features (10, 6) and "
                             f"labels (10,), got {features.shape} and {got_labels.shape}")
    rows = match_rows(features, images)
    if -1 in rows:
        raise AssertionError("some feature rows are not the model's output for any image (was the model in eval "
                             "mode? the test model has dropout)")
    if sorted(rows) != list(range(10)):
        raise AssertionError("every image must appear exactly once in the features")
    if not np.array_equal(got_labels, labels.numpy()[rows]):
        what = "a shuffling" if shuffle else "a"
        raise AssertionError(f"with {what} DataLoader, labels[n] must be the label of the image features[n] came "
                             "from: take the labels from the batches the loader yields")


@pytest.mark.task("5.2", points=2)
def test_features_are_frozen(student):
    """The model's own outputs inside every call (kept by the probe's model, with the facts the wire
    records) show the mode (dropout changes the values), the graph and the batches."""
    images, labels = distinct_images(9, seed=22)
    out = student.probe("extract_features", images=images, labels=labels, batch_size=4, shuffle=False)
    outputs = out["outputs"]
    if not outputs:
        raise AssertionError("the model was never called")
    sizes = [len(o) for o in outputs]
    if sizes != [4, 4, 1]:
        raise AssertionError(f"expected one forward pass per batch of the loader (4, 4, 1), got batches {sizes}")
    for o, start in zip(outputs, (0, 4, 8)):
        assert_close(o, images[start:start + len(o)].flatten(1), "the model's output inside extract_features: "
                     "the model must run in eval mode (the test model has dropout)")
        facts = meta_of(o, "the model's output inside extract_features")
        if facts["requires_grad"] or facts["grad_fn"]:
            raise AssertionError(f"the forward passes recorded an autograd graph (grad_fn {facts['grad_fn']}): run "
                                 "them under torch.no_grad()")
    facts = meta_of(out["features"], "the features")
    if facts["requires_grad"] or facts["grad_fn"]:
        raise AssertionError("the returned features require grad: they must be frozen (no graph)")
    labels_facts = meta_of(out["labels"], "the labels")
    if (facts["dtype"], labels_facts["dtype"], facts["device"]) != ("torch.float32", "torch.int64", "cpu"):
        raise AssertionError(f"features must be float32 on the CPU and labels int64; got {facts['dtype']}, "
                             f"{labels_facts['dtype']} on {facts['device']}")


@pytest.mark.task("5.2", points=1)
@pytest.mark.parametrize("image_dtype,label_dtype", [("float64", "int32"), ("float16", "int64")])
def test_features_are_float32_whatever_the_model_gives(student, image_dtype, label_dtype):
    """A model may compute in float64 or float16 and a loader may yield int32 labels: the features are
    float32 and the labels int64 all the same."""
    images, labels = distinct_images(6, seed=24)
    images = images.to(getattr(torch, image_dtype)).float()  # values exactly representable in both
    out = student.probe("extract_features", images=images, labels=labels, batch_size=4, shuffle=False,
                        image_dtype=image_dtype, label_dtype=label_dtype, start_in_train_mode=False)
    facts, labels_facts = meta_of(out["features"], "the features"), meta_of(out["labels"], "the labels")
    if facts["dtype"] != "torch.float32" or labels_facts["dtype"] != "torch.int64":
        raise AssertionError(f"with a {image_dtype} model and {label_dtype} labels extract_features returned "
                             f"{facts['dtype']} features and {labels_facts['dtype']} labels; they are float32 and "
                             "int64 whatever the model and the loader give")
    assert_close(out["features"], images.flatten(1), f"the features of a {image_dtype} model, as float32")
    assert_close(out["labels"], labels, "the labels", atol=0)


@pytest.mark.task("5.2", points=1)
def test_features_of_a_model_without_parameters(student):
    """device=None means the model's device, and the CPU for a model without parameters (a fixed
    feature map such as raw pixels): that must work too."""
    images, labels = distinct_images(5, seed=25)
    out = student.probe("extract_features", images=images, labels=labels, batch_size=2, shuffle=False,
                        parameterless=True)
    assert_close(out["features"], images.flatten(1), "the features of a model without parameters (raw pixels)")


@pytest.mark.task("5.2", points=1)
def test_features_use_the_embed_function(student):
    images, labels = distinct_images(5, seed=23)
    out = student.probe("extract_features", images=images, labels=labels, batch_size=2, shuffle=False,
                        use_embed=True)
    rows = match_rows(np.asarray(out["features"]), images, factor=2.0)
    if rows != list(range(5)):
        raise AssertionError("with embed=model.encode the features must be what embed returns (here 2 x the "
                             "model's output), not model(images)")


# ---------------------------------------------------------------- Task 5.3: zero-shot
CLASSES = ["circle", "square", "star", "heart"]
TEMPLATES = ["a drawing of a {}.", "a {} in colour", "{}"]


def prompt_table(e: int = 6, seed: int = 31) -> dict[str, torch.Tensor]:
    """An embedding for every prompt, with norms spread over two decades."""
    prompts = [t.format(c) for c in CLASSES for t in TEMPLATES]
    vectors = scaled(rand(len(prompts), e, seed=seed), seed + 1)
    return dict(zip(prompts, vectors))


class FakeClip:
    """What build_zero_shot_classifier needs: encode_text(tokens, normalize) and a tokenizer."""

    def __init__(self, table: dict[str, torch.Tensor]):
        self.table = table

    def encode_text(self, texts, normalize: bool = False) -> torch.Tensor:
        embeddings = torch.stack([self.table[t] for t in texts])  # (n, E)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    @staticmethod
    def tokenizer(texts):
        return _Tokens(texts)


class _Tokens(list):
    def to(self, device):
        return self


@pytest.mark.task("5.3", points=3)
def test_zero_shot_weights_match_open_clip(student):
    table = prompt_table()
    out = student.probe("zero_shot_weights", table=table, classnames=CLASSES, templates=TEMPLATES)
    fake = FakeClip(table)
    expected = open_clip_lib().build_zero_shot_classifier(fake, fake.tokenizer, CLASSES, TEMPLATES,
                                                          num_classes_per_batch=3)  # (E, K)
    assert_close(out["weights"], expected.T, "zero_shot_weights for 4 classes x 3 templates (prompt embeddings of "
                 "very different norms) vs open_clip's build_zero_shot_classifier, transposed to (K, E): normalise "
                 "each prompt's embedding, average over the templates, normalise again")


@pytest.mark.task("5.3", points=1)
def test_zero_shot_weights_are_unit_and_built_without_graph(student):
    """The text tower's outputs inside the call (a graph through a gain that requires grad, when grad is
    on) and the weights returned, with the facts the wire records."""
    out = student.probe("zero_shot_weights", table=prompt_table(e=5, seed=33), classnames=CLASSES,
                        templates=TEMPLATES)
    norms = np.linalg.norm(np.asarray(out["weights"]), axis=1)
    assert_close(norms, np.ones(len(CLASSES)), "the L2 norm of every class vector")
    if not out["encoded"]:
        raise AssertionError("zero_shot_weights never called encode_text")
    for value, what in [(out["weights"], "the class weights"), *[(e, "encode_text's output") for e in out["encoded"]]]:
        facts = meta_of(value, what)
        if facts["requires_grad"] or facts["grad_fn"]:
            raise AssertionError(f"{what} carries an autograd graph (grad_fn {facts['grad_fn']}): build the "
                                 "classifier under torch.no_grad()")


@pytest.mark.task("5.3", points=2)
@pytest.mark.parametrize("logit_scale", [100.0, 7.0])
def test_zero_shot_predict(student, logit_scale):
    image = scaled(rand(6, 5, seed=41), 42)
    weights = F.normalize(rand(4, 5, seed=43), dim=-1)
    probs, preds = student.fn("zeroshot.zero_shot_predict", image, weights, logit_scale=logit_scale)
    logits = logit_scale * F.normalize(image, dim=-1) @ weights.T  # open_clip's zero_shot.run: 100 * f @ W
    assert_close(probs, logits.softmax(dim=1), f"zero_shot_predict probabilities (6 images, 4 classes, logit_scale "
                 f"{logit_scale}): softmax over the classes of logit_scale * cos(image, class)")
    if not np.array_equal(np.asarray(preds), logits.argmax(dim=1).numpy()):
        raise AssertionError("zero_shot_predict predictions must be the most probable class of each image")


# ---------------------------------------------------------------- Task 5.4: k-NN
def reference_knn(bank, bank_labels, queries, k, temperature, num_classes, exclude_self=False):
    """Sort every query's similarities, keep k, scatter exp(s / T) onto the classes."""
    sim = F.normalize(queries.double(), dim=1) @ F.normalize(bank.double(), dim=1).T  # (M, N)
    if exclude_self:
        sim.fill_diagonal_(-np.inf)
    order = sim.argsort(dim=1, descending=True)[:, :k]  # (M, k)
    weights = (sim.gather(1, order) / temperature).exp()
    scores = torch.zeros(len(queries), num_classes, dtype=torch.float64)
    scores.scatter_add_(1, bank_labels[order], weights)
    return scores, scores.argmax(dim=1)


def knn_data(n=40, m=13, d=6, classes=5, seed=51):
    bank = scaled(rand(n, d, seed=seed), seed + 1)
    labels = torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed + 2))
    return bank, labels, scaled(rand(m, d, seed=seed + 3), seed + 4)


@pytest.mark.task("5.4", points=3)
@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_matches_reference(student, k):
    bank, labels, queries = knn_data()
    scores, preds = student.fn("knn.knn_predict", bank, labels, queries, k=k, temperature=0.07, num_classes=6,
                               chunk_size=4)
    ref_scores, ref_preds = reference_knn(bank, labels, queries, k, 0.07, 6)
    assert_close(scores, ref_scores, f"k-NN scores (40 bank features, 13 queries, 6 classes, k={k}, T=0.07, "
                 "processed in chunks of 4): per class, the sum of exp(cos / T) over the k most similar bank "
                 "features", rtol=1e-4, atol=1e-6 * float(ref_scores.max()))
    if not np.array_equal(np.asarray(preds), ref_preds.numpy()):
        raise AssertionError(f"k-NN predictions (k={k}) must be the argmax of the scores")


@pytest.mark.task("5.4", points=2)
def test_knn_vote_is_weighted_not_majority(student):
    """2 close neighbours of class 0 against 3 far ones of class 1: the weighted vote says 0,
    a majority vote would say 1."""
    query = torch.tensor([[1.0, 0.0, 0.0]])
    bank = torch.tensor([[0.99, 0.14, 0.0], [0.99, 0.0, 0.14],  # class 0: cosine 0.99
                         [0.5, 0.87, 0.0], [0.5, 0.0, 0.87], [0.5, -0.87, 0.0],  # class 1: cosine 0.5
                         [-1.0, 0.0, 0.0]]) * torch.tensor([[2.0], [0.5], [3.0], [1.0], [0.1], [1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    scores, preds = student.fn("knn.knn_predict", bank, labels, query, k=5, temperature=0.07)
    ref_scores, _ = reference_knn(bank, labels, query, 5, 0.07, 3)
    if int(np.asarray(preds)[0]) != 0:
        raise AssertionError("2 neighbours at cosine 0.99 (class 0) must outvote 3 at cosine 0.5 (class 1) with "
                             "weights exp(cos / 0.07); the prediction was class 1: a majority vote?")
    assert_close(scores, ref_scores, "k-NN scores of the weighted-vote example (k=5, T=0.07)", rtol=1e-4)


@pytest.mark.task("5.4", points=2)
def test_knn_leave_one_out_excludes_only_the_query(student):
    bank, labels, _ = knn_data(n=12, seed=61)
    bank = torch.cat([bank, bank[:3]])  # entries 12-14 duplicate 0-2: a duplicate still counts
    labels = torch.cat([labels, labels[:3]])  # same labels: a tie between twins never changes the scores
    scores, _ = student.fn("knn.knn_predict", bank, labels, bank, k=4, temperature=0.1, num_classes=5,
                           exclude_self=True, chunk_size=4)
    ref_scores, _ = reference_knn(bank, labels, bank, 4, 0.1, 5, exclude_self=True)
    assert_close(scores, ref_scores, "leave-one-out k-NN (queries = the bank, exclude_self=True, chunks of 4): "
                 "query m never votes for itself (bank entry m), duplicates of it elsewhere still vote",
                 rtol=1e-4, atol=1e-6 * float(ref_scores.max()))


@pytest.mark.task("5.4", points=1)
def test_knn_default_number_of_classes(student):
    """num_classes=None means train_labels.max() + 1: with class 2 absent from the bank there are still 4
    classes (0..3), and a query can be scored for all of them."""
    bank, _, queries = knn_data(n=24, m=5, seed=65)
    labels = torch.tensor([0, 1, 3] * 8)  # no image of class 2 in the bank
    scores, preds = student.fn("knn.knn_predict", bank, labels, queries, k=6, temperature=0.1)
    ref_scores, ref_preds = reference_knn(bank, labels, queries, 6, 0.1, 4)
    assert_close(scores, ref_scores, "k-NN scores with the default num_classes, bank labels {0, 1, 3}: K = "
                 "max + 1 = 4 columns (class 2 scores 0)", rtol=1e-4, atol=1e-6 * float(ref_scores.max()))
    if not np.array_equal(np.asarray(preds), ref_preds.numpy()):
        raise AssertionError("k-NN predictions must be the argmax of the scores")


@pytest.mark.task("5.4", points=1)
def test_knn_of_half_precision_features(student):
    """Features from a model run in float16 (as under autocast on a GPU): similarities and votes are
    computed in float32. In float16 exp(0.99 / 0.07) = 1.4e6 overflows (float16 stops at 65504)."""
    bank, labels, queries = knn_data(seed=66)
    bank, queries = F.normalize(bank, dim=1).half(), F.normalize(queries, dim=1).half()
    scores, _ = student.fn("knn.knn_predict", bank, labels, queries, k=5, temperature=0.07, num_classes=5)
    ref_scores, _ = reference_knn(bank.float(), labels, queries.float(), 5, 0.07, 5)
    assert_close(scores, ref_scores, "k-NN scores of float16 features (compared in float32)", rtol=1e-3,
                 atol=1e-6 * float(ref_scores.max()))
    dtype = meta_of(scores, "the k-NN scores")["dtype"]
    if dtype != "torch.float32":
        raise AssertionError(f"k-NN scores of float16 features are float32; got {dtype}")


@pytest.mark.task("5.4", points=1)
def test_knn_checks_k(student):
    bank, labels, queries = knn_data(n=8)
    student.raises(ValueError, "knn.knn_predict", bank, labels, queries, k=9)
    student.raises(ValueError, "knn.knn_predict", bank, labels, queries, k=0)
    student.raises(ValueError, "knn.knn_predict", bank, labels, bank, k=8, exclude_self=True)


# ---------------------------------------------------------------- Task 5.5: linear probe
def separable(n: int, seed: int, only_class: int | None = None, d: int = 24, classes: int = 3):
    """Classes apart along the first 3 dimensions (means 2.5 apart, spread 0.3); 21 other dimensions of
    spread 3 swamp the cosine distances, so k-NN fails where a linear layer succeeds."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.full((n,), only_class) if only_class is not None
              else torch.randint(classes, (n,), generator=gen))
    x = 3.0 * torch.randn(n, d, generator=gen) + 5.0  # an offset, so standardising matters
    x[:, :classes] = 2.5 * F.one_hot(labels, classes) + 0.3 * torch.randn(n, classes, generator=gen)
    return x, labels


@pytest.mark.task("5.5", points=3)
def test_linear_probe_separates_what_knn_cannot(student):
    x_train, y_train = separable(300, seed=71)
    x_test, y_test = separable(200, seed=72)
    logits = student.fn("probe.linear_probe", x_train, y_train, x_test, num_classes=3)
    if np.asarray(logits).shape != (200, 3):
        raise AssertionError(f"linear_probe must return (M, K) = (200, 3) test logits, got {np.asarray(logits).shape}")
    accuracy = float((np.asarray(logits).argmax(1) == y_test.numpy()).mean())
    _, knn_preds = reference_knn(x_train, y_train, x_test, 20, 0.07, 3)
    knn_accuracy = float((knn_preds == y_test).float().mean())
    assert knn_accuracy < 0.7, f"test data check: k-NN should fail here, got {knn_accuracy:.2f}"
    if accuracy < 0.95:
        raise AssertionError(f"linear probe test accuracy {accuracy:.2f} on linearly separable features "
                             f"(k-NN: {knn_accuracy:.2f}); expected >= 0.95 with the default steps and lr")


@pytest.mark.task("5.5", points=2)
def test_linear_probe_standardises_with_training_statistics(student):
    x_train, y_train = separable(300, seed=73)
    x_test, y_test = separable(60, seed=74, only_class=2)  # a test set of one class
    logits = np.asarray(student.fn("probe.linear_probe", x_train, y_train, x_test))
    accuracy = float((logits.argmax(1) == y_test.numpy()).mean())
    if accuracy < 0.95:
        raise AssertionError(f"on a test set of one class the probe scores {accuracy:.2f}: standardise the test "
                             "features with the TRAINING mean and std, never with their own")


@pytest.mark.task("5.5", points=1)
def test_linear_probe_num_classes(student):
    x_train, y_train = separable(60, seed=75)
    logits = np.asarray(student.fn("probe.linear_probe", x_train, y_train, x_train[:7], num_classes=5, steps=5))
    if logits.shape != (7, 5):
        raise AssertionError(f"num_classes=5 with labels 0..2: the classifier has 5 outputs, logits (7, 5); got "
                             f"{logits.shape}")
    y_gap = torch.where(y_train == 1, torch.tensor(2), y_train)  # classes 0 and 2 only
    logits = np.asarray(student.fn("probe.linear_probe", x_train, y_gap, x_train[:7], steps=5))
    if logits.shape != (7, 3):
        raise AssertionError(f"the default num_classes is train_labels.max() + 1: labels 0 and 2 give 3 outputs, "
                             f"logits (7, 3); got {logits.shape}")


@pytest.mark.task("5.5", points=1)
def test_linear_probe_returns_logits_without_graph(student):
    x_train, y_train = separable(60, seed=76)
    logits = student.fn("probe.linear_probe", x_train, y_train, x_train[:9], num_classes=3, steps=5)
    facts = meta_of(logits, "linear_probe's logits")
    if facts["requires_grad"] or facts["grad_fn"]:
        raise AssertionError(f"linear_probe returns its test logits with an autograd graph (grad_fn "
                             f"{facts['grad_fn']}): they are the frozen classifier's answers, computed under "
                             "torch.no_grad()")


@pytest.mark.task("5.5", points=1)
def test_linear_probe_learns_inside_no_grad(student):
    """Called from inside torch.no_grad() (next to a frozen feature extraction, say), the probe still trains."""
    x_train, y_train = separable(300, seed=77)
    x_test, y_test = separable(100, seed=78)
    logits = student.probe("call_without_grad", target="probe.linear_probe", args=[x_train, y_train, x_test],
                           kwargs=dict(num_classes=3))
    accuracy = float((np.asarray(logits).argmax(1) == y_test.numpy()).mean())
    if accuracy < 0.95:
        raise AssertionError(f"linear_probe called inside torch.no_grad() reaches {accuracy:.2f} on linearly separable "
                             "features; it must train whatever the caller's grad mode (torch.enable_grad())")
