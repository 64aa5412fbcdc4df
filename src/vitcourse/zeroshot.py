"""Week 5 · Zero-shot classification: a classifier written in words.

Shapes: K classes, nP prompt templates, B images, E the width of the joint embedding.

CLIP never saw the labels of the task. Its classifier is built from text (Radford et al. 2021,
section 3.1.4): every class name is put into several prompt templates ("a photo of a {}.",
"a drawing of a {}."), each prompt is embedded by the text tower, and the K class vectors are

    w_k = normalise( mean_p normalise(encode_text(template_p.format(class_k))) )      (K, E)

(normalise each prompt's embedding, average over the templates, normalise again: the same as
open_clip's ``build_zero_shot_classifier``, which returns the transpose, (E, K)). An image is
classified by cosine similarity with every class vector:

    logits = logit_scale * normalise(image_features) @ W^T      (B, K);  CLIP uses logit_scale = 100
    probs = softmax(logits) over the K classes;  prediction = argmax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def zero_shot_weights(encode_text: Callable[[list[str]], Tensor], classnames: Sequence[str],
                      templates: Sequence[str]) -> Tensor:
    """One unit vector per class from prompts: (K, E).

    Args:
        encode_text: a list of n strings -> their embeddings (n, E), of any scale (e.g. a lambda
            that tokenises and calls ``clip.encode_text``). It is called under ``torch.no_grad()``.
        classnames: K names, e.g. ("circle", "square", ...).
        templates: nP format strings with one ``{}``, e.g. ("a drawing of a {}.", "a {}.").

    Returns:
        (K, E), row k = normalise(mean over templates of normalise(embedding of
        template.format(classnames[k]))); every row has unit L2 norm; no autograd graph.
    """
    raise NotImplementedError('Week 5 · Task 5.3: implement zero_shot_weights in src/vitcourse/zeroshot.py')


def zero_shot_predict(image_features: Tensor, class_weights: Tensor,
                      logit_scale: float = 100.0) -> tuple[Tensor, Tensor]:
    """Class probabilities and predictions by cosine similarity with the class vectors.

    Args:
        image_features: (B, E), any scale (L2-normalised here).
        class_weights: (K, E) unit rows, as ``zero_shot_weights`` returns them (normalising them again
            changes nothing; the tests only pass unit rows).
        logit_scale: the inverse temperature (CLIP's learned value is 100).

    Returns:
        probs (B, K): softmax over the K classes of ``logit_scale * cos(image, class)``; each row
        sums to 1. preds (B,) int64: the most probable class of each image.
    """
    raise NotImplementedError('Week 5 · Task 5.3: implement zero_shot_predict in src/vitcourse/zeroshot.py')
