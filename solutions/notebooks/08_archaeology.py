# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 8 · Attention Archaeology (skeleton)

# %%
from vitcourse.scale import scale_banner

print(scale_banner())

# %% [markdown]
# ## 1. Task 8.1: Carlini-Wagner L2

# %% nbgrader={"grade": true, "grade_id": "task_8_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 8.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("8.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Task 8.2: significance

# %% nbgrader={"grade": true, "grade_id": "task_8_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 8.2: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("8.2")
### END HIDDEN TESTS
