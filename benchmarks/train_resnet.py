"""ResNet benchmark: train ``small_resnet`` on the digits, and gradient flow in plain vs residual nets.

Usage::

    .venv/bin/python benchmarks/train_resnet.py                 # both parts
    .venv/bin/python benchmarks/train_resnet.py --no-train      # only the gradient ratios
    .venv/bin/python benchmarks/train_resnet.py --depth 13      # another depth for part (b)
    .venv/bin/python benchmarks/train_resnet.py --seeds 0 1 2 3 4 5   # part (a) once per initial seed

Part (a) trains ``cc.models.small_resnet(seed=s)`` for every ``s`` of ``--seeds``
(default 0, notebook 10's model) with ``cc.models.SMALL_RESNET_RECIPE`` on the
training and validation images of ``cc.data.load_digits()`` (always the same
split; batch orders seeded 0, then 1, as in the notebook) and prints the
test accuracy and the seconds it took (targets: >= 98.5 % and <= 90 s on two cores).

Part (b) measures, at initialisation, the L2 norm of the weight gradient of
every layer of ``plain_cnn(depth)`` (no batch norm, PyTorch's default
initialisation) and of ``resnet((depth - 1) // 2)``, the residual net with
the same number of conv layers, on one batch of 256 training images, and
prints the ratio last conv layer / first conv layer (and classifier / first
conv layer).  Targets at the default depth 9: plain >= 100, residual <= 10.

Part (c), only where CuPy sees a GPU: seconds for one training epoch of
``small_resnet`` on the CPU and on the GPU (model moved with ``.to("gpu")``,
data with ``cc.to_device``), after one warm-up epoch each (which compiles the
kernels); target GPU >= 10x faster.
"""
from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS now, so threadpool_limits also limits it)

import cnncourse as cc
from cnncourse import threads as cc_threads

SEED = 0


def train_small_resnet(seed: int = SEED, progress: bool = False) -> tuple[float, float]:
    """(test accuracy, seconds) of small_resnet (initial weights from ``seed``) trained as in notebook 10."""
    data = cc.data.load_digits(seed=SEED)
    X = np.concatenate([data.X_train, data.X_val])
    y = np.concatenate([data.y_train, data.y_val])
    r = cc.models.SMALL_RESNET_RECIPE
    model = cc.models.small_resnet(seed=seed)
    opt = cc.optim.SGD(model.parameters(), lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"])
    start = time.perf_counter()
    cc.train.fit(model, opt, (X, y), epochs=r["epochs"], batch_size=r["batch_size"], seed=0, progress=progress)
    opt.lr = r["fine_tune_lr"]
    cc.train.fit(model, opt, (X, y), epochs=r["fine_tune_epochs"], batch_size=r["batch_size"], seed=1,
                 progress=progress)
    seconds = time.perf_counter() - start
    return cc.train.evaluate(model, data.X_test, data.y_test), seconds


def gradient_ratios(depth: int, seed: int = SEED, batch: int = 256) -> dict:
    """``{net: (last conv / first conv, classifier / first conv, norms)}`` for plain and residual nets."""
    if depth < 3 or depth % 2 == 0:
        raise ValueError(f"depth must be odd and >= 3 (a stem conv plus two per block), got {depth}")
    data = cc.data.load_digits(seed=seed)
    X, y = data.X_train[:batch], data.y_train[:batch]
    nets = {f"plain_cnn({depth})": cc.models.plain_cnn(depth, seed=seed),
            f"resnet({(depth - 1) // 2})": cc.models.resnet((depth - 1) // 2, seed=seed)}
    out = {}
    for name, model in nets.items():
        norms = list(cc.train.gradient_norms(model, X, y).values())  # input -> output; the classifier last
        out[name] = (norms[-2] / norms[0], norms[-1] / norms[0], norms)
    return out


def epoch_seconds(device: str, seed: int = SEED, warmup: int = 1) -> float:
    """Seconds for one training epoch of small_resnet on ``device`` ("cpu" or "gpu"), after ``warmup`` epochs."""
    data = cc.data.load_digits(seed=seed)
    X, y = cc.to_device(data.X_train, device), cc.to_device(data.y_train, device)
    r = cc.models.SMALL_RESNET_RECIPE
    model = cc.models.small_resnet(seed=seed).to(device)
    opt = cc.optim.SGD(model.parameters(), lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"])
    cc.train.fit(model, opt, (X, y), epochs=warmup, batch_size=r["batch_size"], seed=seed, progress=False)
    if device == "gpu":
        cc.backend.cupy_or_none().cuda.Device().synchronize()
    start = time.perf_counter()
    cc.train.fit(model, opt, (X, y), epochs=1, batch_size=r["batch_size"], seed=seed + 1, progress=False)
    if device == "gpu":
        cc.backend.cupy_or_none().cuda.Device().synchronize()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and cnncourse.threads (default 2)")
    parser.add_argument("--depth", type=int, default=9, help="conv layers of the nets in part (b) (odd; default 9)")
    parser.add_argument("--no-train", action="store_true", help="skip part (a), the training run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED], help="initial seeds for part (a) (default 0)")
    args = parser.parse_args(argv)
    cc_threads.set_threads(args.threads)  # our copies and adds get the same thread count as BLAS and torch
    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.threads)
    except ImportError:
        limit = nullcontext()
    print(f"numpy {np.__version__}, threads {args.threads}")
    with limit:
        if not args.no_train:
            r = cc.models.SMALL_RESNET_RECIPE
            print(f"(a) small_resnet on digits, {r['epochs']} + {r['fine_tune_epochs']} epochs  "
                  "[targets >= 98.5 %, <= 90 s]")
            for seed in args.seeds:
                acc, seconds = train_small_resnet(seed)
                print(f"    seed {seed}: test accuracy {100 * acc:.2f} %, {seconds:.1f} s")
        print(f"(b) gradient norms at initialisation, depth {args.depth} (conv layers), batch of 256:")
        print(f"    {'net':<14} {'first conv':>11} {'last conv':>11} {'classifier':>11} {'last/first':>11} {'clf/first':>10}")
        for name, (ratio, clf_ratio, norms) in gradient_ratios(args.depth).items():
            print(f"    {name:<14} {norms[0]:11.3g} {norms[-2]:11.3g} {norms[-1]:11.3g} {ratio:11.1f} {clf_ratio:10.1f}")
        print("    [targets: plain last/first >= 100, residual last/first <= 10]")
        if cc.backend.cupy_or_none() is None:
            print("(c) one epoch CPU vs GPU: skipped, no usable GPU")
        else:
            cpu, gpu = epoch_seconds("cpu"), epoch_seconds("gpu")
            print(f"(c) one small_resnet epoch: CPU {cpu:.2f} s, GPU {gpu:.3f} s ({cc.backend.backend_name()}), "
                  f"GPU {cpu / gpu:.1f}x faster  [target >= 10x]")


if __name__ == "__main__":
    main()
