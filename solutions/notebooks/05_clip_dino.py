# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 5 placeholder

# %%
from vitcourse.scale import scale_banner

print(scale_banner())

# %% nbgrader={"grade": true, "grade_id": "task_5_1", "locked": true, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("5.1")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "task_5_2", "locked": true, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
grade_task("5.2")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "task_5_3", "locked": true, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
grade_task("5.3")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "task_5_4", "locked": true, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
grade_task("5.4")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "task_5_5", "locked": true, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
grade_task("5.5")
### END HIDDEN TESTS
