"""The grading policy of every exercise (see :mod:`cnncourse.checks.policy` for what the fields mean).

Each entry follows the exercise's own text: what it offers (``allow``) and
which third-party functions would do the whole exercise for the student
(``deny``).  NumPy's array tools (``np.pad``, slicing, ``np.sum``,
``np.einsum``, ``np.fft`` ...) are always allowed.  A new exercise needs an
entry here: ``cnncourse validate`` refuses a notebook whose exercise has none,
and ``tests/test_policy.py`` names it.
"""
from __future__ import annotations

from .policy import Family, Policy

# ---- families of third-party functions -----------------------------------------------------------

NUMPY_CORRELATE = Family("NumPy's `np.correlate` and `np.convolve`", ("numpy:correlate", "numpy:convolve"))

SCIPY_FILTERS = Family(
    "SciPy's correlation, convolution and filter functions",
    ("scipy.signal:correlate", "scipy.signal:convolve", "scipy.signal:correlate2d", "scipy.signal:convolve2d",
     "scipy.signal:fftconvolve", "scipy.signal:oaconvolve", "scipy.signal:lfilter", "scipy.signal:filtfilt",
     "scipy.ndimage:correlate", "scipy.ndimage:correlate1d", "scipy.ndimage:convolve", "scipy.ndimage:convolve1d",
     "scipy.ndimage:uniform_filter", "scipy.ndimage:uniform_filter1d", "scipy.ndimage:generic_filter",
     "scipy.ndimage:generic_filter1d"))

SCIPY_TOEPLITZ = Family("SciPy's matrix builders `scipy.linalg.toeplitz` and `scipy.linalg.convolution_matrix`",
                        ("scipy.linalg:toeplitz", "scipy.linalg:convolution_matrix"))

TORCH_CONV = Family(
    "PyTorch's convolutions",
    ("torch.nn.functional:conv1d", "torch.nn.functional:conv2d", "torch.nn.functional:conv_transpose1d",
     "torch.nn.functional:conv_transpose2d", "torch:conv1d", "torch:conv2d", "torch.nn:Conv1d.forward",
     "torch.nn:Conv2d.forward"))

TORCH_UNFOLD = Family("PyTorch's `unfold`", ("torch.nn.functional:unfold", "torch.nn:Unfold.forward"))

SCIPY_MAX_FILTER = Family("SciPy's maximum filters",
                          ("scipy.ndimage:maximum_filter", "scipy.ndimage:maximum_filter1d",
                           "scipy.ndimage:generic_filter"))

SCIPY_MEAN_FILTER = Family("SciPy's mean and correlation filters",
                           ("scipy.ndimage:uniform_filter", "scipy.ndimage:uniform_filter1d",
                            "scipy.ndimage:correlate", "scipy.ndimage:convolve", "scipy.ndimage:generic_filter",
                            "scipy.signal:correlate2d", "scipy.signal:convolve2d"))

TORCH_MAX_POOL = Family("PyTorch's max pooling",
                        ("torch.nn.functional:max_pool1d", "torch.nn.functional:max_pool2d",
                         "torch.nn.functional:adaptive_max_pool2d", "torch:max_pool2d",
                         "torch.nn:MaxPool2d.forward"))

TORCH_AVG_POOL = Family("PyTorch's average pooling",
                        ("torch.nn.functional:avg_pool1d", "torch.nn.functional:avg_pool2d",
                         "torch.nn.functional:adaptive_avg_pool2d", "torch:avg_pool1d",
                         "torch.nn:AvgPool2d.forward"))

AUTOGRAD = Family("automatic differentiation (PyTorch's autograd)",
                  ("torch:Tensor.backward", "torch.autograd:grad", "torch.autograd:backward",
                   "torch.autograd.functional:jacobian", "torch.autograd.functional:vjp", "torch.func:grad",
                   "torch.func:vjp"))

NUMERICAL_GRADIENT = Family("SciPy's finite-difference gradients",
                            ("scipy.optimize:approx_fprime", "scipy.optimize:check_grad"))

SOFTMAX = Family("ready-made softmax and cross-entropy functions (SciPy's, PyTorch's)",
                 ("scipy.special:softmax", "scipy.special:log_softmax", "scipy.special:logsumexp",
                  "torch.nn.functional:softmax", "torch.nn.functional:log_softmax",
                  "torch.nn.functional:cross_entropy", "torch.nn.functional:nll_loss", "torch:softmax",
                  "torch:log_softmax", "torch.nn:CrossEntropyLoss.forward"))

TORCH_ADAM = Family("PyTorch's optimisers", ("torch.optim:Adam.step", "torch.optim:AdamW.step"))

NORMALISATION = Family("ready-made normalisation (SciPy's `zscore`, PyTorch's batch norm)",
                       ("scipy.stats:zscore", "scipy.stats:zmap", "torch.nn.functional:batch_norm",
                        "torch.nn.functional:instance_norm", "torch:batch_norm", "torch.nn:BatchNorm2d.forward"))

TORCH_DROPOUT = Family("PyTorch's dropout", ("torch.nn.functional:dropout", "torch:dropout", "torch.nn:Dropout.forward"))

LAYER_NORM = Family("ready-made layer and group normalisation (PyTorch's)",
                    ("torch.nn.functional:layer_norm", "torch.nn.functional:group_norm", "torch:layer_norm",
                     "torch.nn:LayerNorm.forward", "torch.nn:GroupNorm.forward"))

# ---- one policy per exercise ---------------------------------------------------------------------

_CONV = (NUMPY_CORRELATE, SCIPY_FILTERS, TORCH_CONV)

POLICIES: dict[str, Policy] = {
    # notebook 01
    "1.1": Policy(allow=("cnncourse.signal.pad1d",), deny=_CONV),
    "1.2": Policy(deny=(NUMPY_CORRELATE, SCIPY_FILTERS, SCIPY_TOEPLITZ)),
    # notebook 02
    "2.1": Policy(),
    "2.2": Policy(note="`np.polyfit` is fine"),
    "2.3": Policy(deny=(NUMPY_CORRELATE, SCIPY_FILTERS), note="`np.fft` is the point of the exercise"),
    # notebook 03
    "3.1": Policy(deny=_CONV),
    # notebook 04
    "4.1": Policy(deny=_CONV),
    "4.2": Policy(),
    # notebook 05
    "5.1": Policy(deny=(TORCH_UNFOLD,)),
    "5.2": Policy(deny=(NUMPY_CORRELATE, SCIPY_FILTERS)),
    "5.4": Policy(deny=(*_CONV, TORCH_UNFOLD), note="your own `im2col_exercise` from 5.1 is the point of the exercise"),
    # notebook 06
    "6.1": Policy(deny=(SCIPY_MAX_FILTER, TORCH_MAX_POOL)),
    "6.2": Policy(deny=(SCIPY_MEAN_FILTER, TORCH_AVG_POOL)),
    # notebook 07
    "7.1": Policy(allow=("cnncourse.signal",), deny=(AUTOGRAD,)),
    "7.2": Policy(deny=(NUMPY_CORRELATE, SCIPY_FILTERS, TORCH_CONV, AUTOGRAD)),
    "7.3": Policy(deny=(SCIPY_MAX_FILTER, TORCH_MAX_POOL, AUTOGRAD)),
    "7.4": Policy(deny=(NUMERICAL_GRADIENT, AUTOGRAD), note="calling the function `f` you are given is fine",
                  check_functions=True),
    # notebook 08
    "8.1": Policy(deny=(SOFTMAX, AUTOGRAD)),
    "8.2": Policy(deny=(TORCH_ADAM,)),
    "8.3": Policy(deny=(TORCH_DROPOUT,)),
    "8.4": Policy(deny=(TORCH_DROPOUT, AUTOGRAD)),
    "8.5": Policy(allow=("cnncourse.losses.softmax_cross_entropy", "cnncourse.nn"),
                  note="calling the model you are given is fine"),
    # notebook 09
    "9.1": Policy(deny=(NORMALISATION,)),
    "9.2": Policy(deny=(NORMALISATION, AUTOGRAD)),
    "9.3": Policy(deny=(NORMALISATION, LAYER_NORM)),
    "9.4": Policy(deny=(NORMALISATION, LAYER_NORM, AUTOGRAD)),
    # notebook 10
    "10.1": Policy(allow=("cnncourse.conv.conv_forward", "cnncourse.activations.relu_forward"), deny=(TORCH_CONV,)),
    "10.2": Policy(allow=("cnncourse.conv.conv_forward", "cnncourse.conv.conv_backward",
                          "cnncourse.activations.relu_forward", "cnncourse.activations.relu_backward"),
                   deny=(TORCH_CONV, AUTOGRAD)),
}
