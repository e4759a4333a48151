"""Exercise checks: one ``check_<exercise>(fn)`` per exercise, registered in ``EXERCISES``.

Usage in a notebook::

    cc.checks.check_correlate_same(correlate_same)
"""
from .core import EXERCISES, CheckResult, compare, run_cases  # noqa: F401
from .ch01_convolution_1d import check_correlate_same, check_toeplitz_matrix  # noqa: F401
from .ch02_filters import check_difference_filters, check_error_order, check_fft_correlate_periodic  # noqa: F401
from .ch09_normalisation import (check_layernorm_backward_exercise, check_layernorm_forward_exercise,  # noqa: F401
                                 check_spatial_batchnorm_backward, check_spatial_batchnorm_train)
from .ch03_convolution_2d import check_correlate2d_padded  # noqa: F401
from .ch04_convolution_layers import check_conv_layer_forward, check_layer_shapes  # noqa: F401
from .ch05_fast_convolution import check_conv1d_thread, check_conv_layer_im2col, check_cuda_conv1d, check_im2col_exercise  # noqa: F401
from .ch06_pooling import check_avg_pool_exercise, check_max_pool_exercise  # noqa: F401
from .ch07_backprop import check_conv1d_backward, check_conv2d_backward, check_gradient_check, check_max_pool_backward_exercise  # noqa: F401
from .ch10_resnets import check_residual_block_backward_exercise, check_residual_block_forward_exercise  # noqa: F401
from .ch08_training import (check_adam_step, check_dropout_backward_exercise, check_dropout_forward_exercise,  # noqa: F401
                            check_initial_loss_check, check_softmax_cross_entropy_exercise)
