# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 8 · Attention Archaeology: a forensic report on a ViT and a CNN
#
# Seven weeks of tools become one excavation. You fine-tune (or, at SMOKE scale, load) a ViT and a CNN,
# read the ViT's attention at every block and head, explain predictions with rollout, gradient-weighted
# attention and Grad-CAM, rank every head by what ablating it costs, attack both models with FGSM, PGD
# and Carlini-Wagner, look at attention on the attacked images, and sort the mistakes into what only the
# ViT gets wrong, what only the CNN gets wrong, and what both get wrong. This notebook is your
# **technical report**: it shows the excavation's figures and tables, and you write the analysis.
#
# **What you do this week**
#
# * **Task 8.1** (`src/vitcourse/cw.py`): the Carlini-Wagner L2 attack, the one attack of the project
#   the course has not built yet. Graded by the hidden tests.
# * **Task 8.2** (`src/vitcourse/significance.py`): McNemar's test and Wilson intervals, so that "the
#   ViT is more accurate" becomes a claim you can defend. Graded by the hidden tests.
# * **The report** (sections 4 to 11): every section shows the excavation's evidence and ends in an
#   answer cell that your instructor grades by hand (the points and what a full answer holds are above
#   each cell). Section 12 checks that the run holds every figure and table the report needs.
# * **The project folder** `weeks/08_archaeology/`: `models/`, `analysis/`, `experiments/` (the run's
#   settings as files) and a `README.md` to fill in (set-up, usage, results).
#
# **One command runs the whole excavation** (from this folder): `python -m vitcourse.archaeology`
# writes `runs/shapes-smoke/` (figures, CSV and Markdown tables, `summary.json`); it resumes where it
# stopped and shows its progress. This notebook runs the same thing when a cell first asks for the run.
# The demo: `python3 course.py demo` (from the course folder).
#
# **Scale.** At SMOKE (the default) the excavation runs on the Week 6 shape scenes with the course's
# small ViT and CNN (both with shipped weights), on a CPU, in about a minute; every number below is about those
# two small models on generated scenes. At FULL it fine-tunes pretrained ViT-B/16 and ResNet-50 on
# PathMNIST or EuroSAT on a GPU (`VIT_SCALE=full python -m vitcourse.archaeology --config
# experiments/pathmnist-full.toml`): those are the numbers the seed's bar (> 85 % test accuracy) is
# about. Whose code runs: yours where your task of Weeks 6-8 is done; where a Week 6 or 7 task is not,
# the course repository uses its reference and says so (a student copy stops at your task's message).
#
# The checks printed here and the public tests (`vitgrade check 8`) are for feedback only; the hidden
# tests decide the grade of Tasks 8.1 and 8.2.

# %%
# %load_ext autoreload
# %autoreload 2
import json
import math
import time
from functools import cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchattacks
from IPython.display import Image, Markdown, display
from scipy.stats import binomtest
from torch import nn

from vitcourse.archaeology import check_report, default_out, excavate
from vitcourse.cw import carlini_wagner_l2
from vitcourse.scale import SCALE, scale_banner
from vitcourse.significance import mcnemar_test, wilson_interval

print(scale_banner())
torch.manual_seed(0)
NOTEBOOK_START = time.monotonic()
DATASET = SCALE.pick(smoke="shapes", full="pathmnist")

# %% [markdown]
# ## 1. Task 8.1: the Carlini-Wagner L2 attack
#
# *About 5 s at SMOKE on the course's 2-core machine.*
#
# FGSM and PGD (Week 7) fix a budget and look for the worst image inside it. Carlini and Wagner (2017)
# turn the question around: **what is the closest image the model gets wrong?** For an image $x$ with
# label $y$ and logits $Z$ they minimise
#
# $$\lVert x' - x \rVert_2^2 + c \cdot f(x'), \qquad f(x') = \max\big(Z(x')_y - \max_{i \neq y} Z(x')_i,\; -\kappa\big).$$
#
# $f$ is positive while the model still prefers $y$ and bottoms out at $-\kappa$ once another class
# leads by the *confidence* $\kappa$; past that point only the distance pulls, so the optimum sits just
# beyond a margin of $\kappa$. Three devices make it work:
#
# * **the box through tanh**: optimise $w$ with $x' = \tfrac12(\tanh w + 1)$, which lies in $(0, 1)$
#   whatever $w$ is, so nothing needs clipping (clipping has no gradient); start at $w = \operatorname{atanh}(2x - 1)$;
# * **Adam** on $w$;
# * **a binary search over $c$** per image: too small and the attack never crosses the boundary, too
#   large and it overshoots. Start at `initial_const`; a success lowers the upper bound to $c$, a failure
#   raises the lower bound; the next $c$ is the midpoint once an upper bound exists, else $10c$.
#
# Keep, per image, the closest adversarial image of the whole search: one that another class leads by
# more than $\kappa$. Leave the model as you found it: attack it in eval mode, give it back its mode,
# and differentiate with respect to $w$ only (no `.grad` on its parameters).
#
# Implement `carlini_wagner_l2` in `cw.py`. The check: on a two-class linear model the smallest
# perturbation that flips an image is known, $|m| / \lVert w \rVert$ for a logit difference $m$ and weight
# difference $w$; your attack should land within a few per cent of it.

# %%
def linear_problem(n_images: int = 8, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A two-class linear model over 3 x 8 x 8 images whose boundary crosses the grey image, and images at
    distance 0.2-0.6 from it. Returns (model, images, labels, distances to the boundary)."""
    g = torch.Generator().manual_seed(seed)
    n = 3 * 8 * 8
    w = torch.randn(n, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(n, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-w / 2, w / 2]))
        model[1].bias.copy_(torch.tensor([0.0, -0.5 * float(w.sum())]))
    points = 0.4 + 0.2 * torch.rand(n_images, n, generator=g)
    points -= ((points @ w - 0.5 * w.sum()) / w.norm() ** 2)[:, None] * w  # onto the boundary
    distance = 0.2 + 0.4 * torch.rand(n_images, generator=g)
    side = torch.where(torch.rand(n_images, generator=g) < 0.5, -1.0, 1.0)
    images = (points + (side * distance)[:, None] * w / w.norm()).reshape(n_images, 3, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(dim=-1)  # each image's class: the label it is attacked from
    return model.eval(), images, labels, distance


def margin(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max over the other classes minus the true class's logit (> 0: misclassified)."""
    with torch.no_grad():
        logits = model(images)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    return logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1) - true


model, images, labels, distance = linear_problem()
adversarial = carlini_wagner_l2(model, images, labels, initial_const=1e-3)
norm = (adversarial - images).flatten(1).norm(dim=1)
print(f"fooled {int((margin(model, adversarial, labels) > 0).sum())} of {len(labels)} images, from c = 1e-3")
print(f"L2 norm / closed-form minimum: {(norm / distance).min():.4f} .. {(norm / distance).max():.4f} (1 is optimal)")
print(f"pixels in [{float(adversarial.min()):.3f}, {float(adversarial.max()):.3f}]; model still in eval mode: "
      f"{not model.training}; gradients on its parameters: {[p.grad for p in model.parameters()]}")
theirs = torchattacks.CW(model, c=1, kappa=0, steps=200, lr=0.01)(images, labels)
print(f"torchattacks' CW (c = 1, no search): fooled {int((margin(model, theirs, labels) > 0).sum())}, L2 / minimum "
      f"{((theirs - images).flatten(1).norm(dim=1) / distance).max():.4f} at most")

# %% [markdown]
# The confidence $\kappa$ buys margin with distance: on the linear model the price is exactly
# $\kappa / \lVert w \rVert$ per image. Each point below is one image at one $\kappa$.

# %%
kappas = [0.0, 2.0, 4.0, 8.0]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
w_norm = float((model[1].weight[1] - model[1].weight[0]).detach().norm())
for kappa in kappas:
    attacked = carlini_wagner_l2(model, images, labels, kappa=kappa, initial_const=1e-2)
    axes[0].plot(distance, (attacked - images).flatten(1).norm(dim=1), "o", label=f"kappa {kappa:g}")
    axes[1].plot([kappa] * len(labels), margin(model, attacked, labels), "o", color="C0")
line = torch.linspace(0.2, 0.6, 2)
for kappa in kappas:
    axes[0].plot(line, line + kappa / w_norm, "k:", lw=0.8)
axes[0].set(xlabel="distance to the boundary", ylabel="L2 of the C&W perturbation",
            title="dotted: the minimum, distance + kappa / ||w||")
axes[0].legend(fontsize=8)
axes[1].plot(kappas, kappas, "k:", label="margin = kappa")
axes[1].set(xlabel="kappa", ylabel="margin of the adversarial image", title="a larger kappa, a larger margin")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# Why would anyone pay for margin? An adversarial image that barely crosses the boundary of one model
# often fails on another; one with a margin transfers better (Carlini and Wagner used $\kappa$ to break
# defensive distillation). *Question:* in section 9 the C&W distances of the ViT and the CNN are compared
# at $\kappa = 0$. Would you expect their ranking to change at $\kappa = 5$?

# %% nbgrader={"grade": true, "grade_id": "task_8_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 8.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("8.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Task 8.2: is the difference real?
#
# *Under a second at SMOKE.*
#
# Two models on the same $n$ test images, accuracies 0.962 and 0.955: better, or noise? Two tools, both
# written from their formulas in the module's docstring:
#
# * **the Wilson interval** for one accuracy ($k$ of $n$ right, $p = k/n$, $z$ the normal quantile):
#   centre $\frac{p + z^2/2n}{1 + z^2/n}$, half-width $\frac{z}{1 + z^2/n}\sqrt{\frac{p(1-p)}{n} + \frac{z^2}{4n^2}}$.
#   Unlike the textbook $p \pm z\sqrt{p(1-p)/n}$ (Wald), it never leaves [0, 1] and does not collapse to
#   a point at 100 %;
# * **McNemar's exact test** for two models on the same images: only the $b$ images only model A gets
#   wrong and the $c$ images only model B gets wrong carry information. If the models were equally good,
#   $b \sim \mathrm{Binomial}(b + c, \tfrac12)$, and the two-sided p-value is
#   $\min(1, 2\,P(X \le \min(b, c)))$.
#
# Implement `mcnemar_test` and `wilson_interval` in `significance.py`. The check compares them with
# scipy's `binomtest`.

# %%
labels_demo = torch.randint(5, (300,), generator=torch.Generator().manual_seed(1))
a_pred = torch.where(torch.rand(300) < 0.9, labels_demo, (labels_demo + 1) % 5)
b_pred = torch.where(torch.rand(300) < 0.85, labels_demo, (labels_demo + 2) % 5)
result = mcnemar_test(labels_demo, a_pred, b_pred)
b, c = int(result["b"]), int(result["c"])
print(f"McNemar: b = {b}, c = {c}, p = {result['p_value']:.5g}; scipy binomtest: "
      f"{binomtest(min(b, c), b + c, 0.5).pvalue:.5g}")
for k, n in ((285, 300), (0, 20), (20, 20)):
    ours = wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    print(f"Wilson {k}/{n}: ({ours[0]:.4f}, {ours[1]:.4f}); scipy: ({ref.low:.4f}, {ref.high:.4f})")

fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
n = 20
ks = np.arange(n + 1)
wilson = np.array([wilson_interval(int(k), n) for k in ks])
wald = np.array([(k / n - 1.96 * math.sqrt(k / n * (1 - k / n) / n), k / n + 1.96 * math.sqrt(k / n * (1 - k / n) / n))
                 for k in ks])
ax.fill_between(ks / n, wilson[:, 0], wilson[:, 1], alpha=0.35, label="Wilson")
ax.plot(ks / n, wald[:, 0], "k--", lw=0.8, label="Wald")
ax.plot(ks / n, wald[:, 1], "k--", lw=0.8)
ax.set(xlabel="observed accuracy (n = 20)", ylabel="95 % interval", title="Wilson vs Wald: the edges")
ax.legend()
plt.show()

# %% [markdown]
# At $k = 0$ or $k = n$ Wald claims certainty; Wilson does not. *Question:* your SMOKE CNN may score 100 %
# on 1,000 scenes. What does Wilson say about its true accuracy, and why can McNemar still call the
# difference with the ViT significant when the two intervals overlap?

# %% nbgrader={"grade": true, "grade_id": "task_8_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 8.2: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("8.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The excavation
#
# *About 40 s at SMOKE the first time (its stages took 34 s with one CPU thread on the course's 2-core
# machine, quiet; about twice that on a busy one); a second of reading afterwards.*
#
# `excavation()` runs `vitcourse.archaeology` into `runs/shapes-smoke` (next to this notebook; a run
# with the course's reference package goes to `runs/shapes-smoke-reference`) the first time a cell asks,
# and resumes it after that: stages already done with the same settings and code are skipped. The
# command line does the same: `python -m vitcourse.archaeology`. Its first lines say the scale, the data,
# the models and whose code runs each piece. It calls your Task 8.1 and 8.2 code first, so an unfinished
# task stops here in its own words.

# %%
RUN = default_out(DATASET)


@cache
def excavation() -> Path:
    """The run this report reads, made (or resumed) on first use."""
    probe = torch.rand(1, 3, 4, 4)
    carlini_wagner_l2(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), probe, torch.tensor([0]), steps=1,
                      binary_search_steps=1)  # your Task 8.1 (a stub stops here)
    mcnemar_test(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 1]))  # your Task 8.2
    tick = time.monotonic()
    out = excavate(RUN, dataset=DATASET, progress=False)
    print(f"excavation: {time.monotonic() - tick:.0f} s")
    return out


def table(name: str) -> None:
    display(Markdown((excavation() / "tables" / f"{name}.md").read_text()))


def figure(name: str, part: int | None = None, width: int | None = None) -> None:
    file = f"{name}.png" if part is None else f"{name}_{part:02d}.png"
    display(Image(filename=str(excavation() / "figures" / file), width=width))


excavation()

# %% [markdown]
# ## 4. Introduction
#
# *Reading only.*
#
# The accuracy of both models on the test set, and where they came from:

# %%
table("accuracy")

# %% [markdown]
# **Your answer (2 points).** The problem, the dataset and the approach, for a reader who has not taken
# this course: what is being compared and why, what the data is (classes, size, what makes it easy or
# hard), and the plan of the excavation in three or four sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_introduction", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 2: states the question (where does a ViT look, what do its heads do, how does it
# fail, compared with a CNN), the dataset with its classes, size and the masks that make explanations
# measurable, and the plan (models, attention, heads, attacks, failures). 1: two of the three. 0: none.
# ### END SOLUTION

# %% [markdown]
# ## 5. Method
#
# *Reading only.*
#
# The settings the run used (`experiments/shapes-smoke.toml` holds the same as a file), and the code
# behind each piece:

# %%
summary = json.loads((excavation() / "summary.json").read_text())
print({k: v for k, v in summary["settings"].items() if k in ("dataset", "panels", "stats_images", "ablation_images",
                                                              "attack_images", "cw_images", "epsilons", "pgd_steps")})
print("code:", summary["code"])
for name, model_info in summary["models"].items():
    print(f"{name}: {model_info['note']}")

# %% [markdown]
# **Your answer (3 points).** The architectures (blocks, heads, width, patch size; the CNN's stages),
# how each model was trained or fine-tuned, and every analysis method you report: what attention
# rollout, gradient-weighted attention and Grad-CAM compute, how a head's importance is measured, which
# attacks with which budgets, and how McNemar and Wilson are used.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_method", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 3: both architectures with their numbers; the training recipe (or that the SMOKE
# models were trained by the course's command, with its recipe); each analysis method in a sentence that
# is right (rollout multiplies residual-mixed attention through the blocks; gradient-weighted attention
# keeps the positive part of gradient x attention; Grad-CAM weights the last feature maps by their mean
# gradient; ablation zeroes one head's output before the projection; the attacks' norms and budgets;
# McNemar on the discordant images). 2: one part missing or wrong. 1: a list of names. 0: nothing.
# ### END SOLUTION

# %% [markdown]
# ## 6. Quantitative results
#
# *Reading only.*
#
# Attention statistics by block (how far the CLS token and the patches look, how spread their attention
# is), where the maps point on the scenes' objects, the significance of the accuracy difference, and the
# ten most important heads (the full ranking, every head, is in `tables/head_ranking.csv`):

# %%
table("attention_by_layer")
figure("attention_by_layer")
if (excavation() / "tables" / "explanations.md").is_file():
    table("explanations")
table("significance")
ranking = (excavation() / "tables" / "head_ranking.md").read_text().splitlines()
display(Markdown("\n".join(ranking[:14])))

# %% [markdown]
# **Your answer (4 points).** What the numbers say: how attention distance and entropy change with depth
# (compare the first and last block), which explanation method points at the object best and by how much
# over chance, whether the accuracy difference is significant (quote b, c and p), and what the head
# ranking shows (are the important heads in one block? how much does the most important one cost?).

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_quantitative", "locked": false, "points": 4, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 1 point each: depth trend of distance and entropy with the run's numbers; the
# explanation methods ranked against chance (the object's share); the significance test read correctly
# (a p-value is not an effect size; overlapping intervals do not contradict McNemar); the head ranking
# interpreted (where the important heads are, the size of the largest loss increase). Numbers must be the
# run's.
# ### END SOLUTION

# %% [markdown]
# ## 7. Qualitative results: attention, block by block and head by head
#
# *Reading only.*
#
# The CLS token's attention (mean over heads) from the first block to the last, for 20 test scenes;
# then every head of every block on one scene, and the head specialisation matrix (each head's
# statistics and importance side by side; `tables/head_specialisation.csv` has every head, with a
# one-word pattern, the course's convention: the statistic that sets the head apart).

# %%
figure("attention_progression", width=560)
figure("heads_gallery", width=520)
figure("head_specialisation")

# %% [markdown]
# **Your answer (3 points).** How global context emerges over the blocks in these pictures (at which
# block does attention settle on the object? what happens in the last block?), and what three different
# heads do, each with the statistic and the picture that show it.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_qualitative", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 3: the progression described with examples from the figure (not in general terms);
# three heads named by block and head, each with a statistic from the matrix and what the gallery shows.
# 2: the progression or the heads thin. 1: generic text that fits any ViT. 0: nothing.
# ### END SOLUTION

# %% [markdown]
# ## 8. ViT vs CNN: side by side
#
# *Reading only.*
#
# Input | ViT attention rollout | ViT gradient-weighted attention | CNN Grad-CAM (more panels in the run's
# `figures/comparisons_*.png`; the seed asks for 50 or more at FULL scale):

# %%
figure("comparisons", part=1, width=520)

# %% [markdown]
# **Your answer (4 points).** How the ViT's explanations differ from the CNN's, with panels as evidence:
# sharpness, whether they cover the object or its edges, what they do with the distractor and the
# clutter, and where rollout and the gradient-weighted map disagree (and which you trust, given section 6).

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_vit_vs_cnn", "locked": false, "points": 4, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 1 point each: a difference in resolution/shape of the maps, tied to the architectures
# (a 4 x 4 feature map upsampled vs an 8 x 8 patch grid); what each does with distractors, with a panel
# cited; rollout vs gradient-weighted disagreement, with a panel cited; a judgement of which map to
# trust that uses section 6's measurements.
# ### END SOLUTION

# %% [markdown]
# ## 9. Adversarial forensics
#
# *Reading only.*
#
# Accuracy under FGSM and PGD against the L-infinity budget, and under Carlini-Wagner (your Task 8.1)
# against the L2 budget; then each model attacked by PGD at 4/255, with its map on the clean and the
# attacked image.

# %%
figure("robustness_curves")
table("robustness")
figure("adversarial_attention", width=640)
table("adversarial_attention")

# %% [markdown]
# **Your answer (4 points).** Which model is more robust here, under which attack, by how much (areas or
# accuracies at one budget, and the C&W distances); what happens to the maps when the prediction flips
# (does attention move off the object, or stay while the answer changes?); and an explanation of the
# difference that the evidence supports. Compare with what Mahmood et al. (2021) found for full-size
# models, and say why the SMOKE models may not behave like them.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_adversarial", "locked": false, "points": 4, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 1 point each: robustness compared with the run's numbers for all three attacks;
# the maps under attack described with the table's correlation and mass on the object; an explanation
# that does not go beyond the evidence; the comparison with the literature and the caveat about scale
# (small models on generated scenes, white-box attacks on each model separately).
# ### END SOLUTION

# %% [markdown]
# ## 10. Failure taxonomy
#
# *Reading only.*
#
# Week 7's error taxonomy on the test set: the images only the ViT gets wrong, only the CNN, and both,
# with how their maps look (mass on the object, the last block's attention entropy), and examples of
# each group.

# %%
table("taxonomy")
figure("failure_examples", width=520)

# %% [markdown]
# **Your answer (3 points).** The taxonomy with explanations in the form "the ViT fails on X because its
# attention does not capture Y": at least two systematic failure modes, each supported by examples and
# by a number from the table (object size, mass on the object, entropy). If a group is empty, say what
# that means and what you would do to find its failures.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_failures", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 3: two failure modes, each with examples from the figure and a number from the table
# that supports it; empty groups discussed. 2: one mode well supported. 1: examples described without a
# mechanism. 0: nothing.
# ### END SOLUTION

# %% [markdown]
# ## 11. Insights, limitations and future work
#
# *Writing only.*
#
# **Your answer: insights (3 points).** What you learned about how ViTs work that you could not have
# said before this excavation: three insights, each one sentence of claim and one of evidence from the
# sections above.

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_insights", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 1 point per insight that is specific and backed by a figure or number of this
# report (not a restatement of a paper).
# ### END SOLUTION

# %% [markdown]
# **Your answer: limitations and future work (2 points).** What limits these conclusions (scale, data,
# attacks, the explanation methods' own faithfulness, the statistics) and two concrete next steps (one
# of the seed's extension ideas, or your own).

# %% [markdown] nbgrader={"grade": true, "grade_id": "report_limitations", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# *Grading guide.* 2: at least three limitations that apply to this run, and two next steps precise
# enough to start on. 1: generic limitations or vague steps. 0: nothing.
# ### END SOLUTION

# %% [markdown]
# ## 12. Checklist
#
# *A second.*
#
# The run holds every figure and table this report shows, a head ranking with every head exactly once,
# and a taxonomy with all three groups (`check_report`, what the command prints at its end):

# %%
problems = check_report(excavation())
print("report check:", "complete" if not problems else problems)
assert not problems, problems
print(f"\nnotebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")
