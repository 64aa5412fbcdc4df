"""Course-wide probe code, importable inside the sandbox as ``course_probes``.

Reference models and helpers that more than one week's hidden suite runs next to the student's
code (a small CNN, a tiny ViT, training loops) are written here once. Like every probe, they only
compute: the tests in the grader's process compare.
"""
