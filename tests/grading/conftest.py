"""The grader's test corpus: notebooks that are data, not tests.

``source/01_convolution_1d.ipynb`` is a small source notebook (exercises 1.1 and
1.2); ``submissions/<case>/01_convolution_1d.ipynb`` are student submissions
built from its release, one per behaviour the grader must handle.  Nothing
here is collected, with or without ``--nbval``.
"""
collect_ignore_glob = ["*.ipynb", "*/*.ipynb", "*/*/*.ipynb", "*.py"]
