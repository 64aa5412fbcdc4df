# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 7 · ViT vs CNN: Grad-CAM, adversarial attacks, transfer, shape bias, error analysis
#
# (Draft: the sections are being written.)

# %%
from vitcourse.scale import scale_banner

print(scale_banner())

# %% [markdown]
# ## 1. Task 7.1: Grad-CAM

# %% nbgrader={"grade": true, "grade_id": "task_7_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Task 7.2

# %% nbgrader={"grade": true, "grade_id": "task_7_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.2: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 7.3

# %% nbgrader={"grade": true, "grade_id": "task_7_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.3: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 7.4

# %% nbgrader={"grade": true, "grade_id": "task_7_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.4: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 7.5

# %% nbgrader={"grade": true, "grade_id": "task_7_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.5: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 7.6

# %% nbgrader={"grade": true, "grade_id": "task_7_6", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.6: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.6")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Task 7.7

# %% nbgrader={"grade": true, "grade_id": "task_7_7", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 7.7: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("7.7")
### END HIDDEN TESTS
