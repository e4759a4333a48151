"""Training benchmark: LeNet on the digits, and one training step in NumPy vs PyTorch.

Usage::

    .venv/bin/python benchmarks/train_digits.py               # both parts
    .venv/bin/python benchmarks/train_digits.py --seeds 0 1 2 3 4   # part (a) once per seed
    .venv/bin/python benchmarks/train_digits.py --no-train    # only the step timings
    .venv/bin/python benchmarks/train_digits.py --profile     # cProfile one NumPy step of each net

Part (a) trains ``cc.models.lenet`` on ``cc.data.load_digits()`` with
``cc.models.LENET_RECIPE``, the recipe of notebook 08 (standardised inputs,
width 64, dropout 0.3, random one-pixel shifts of a quarter of the images,
Adam with a step decay, trained on the training and validation images), and
prints the test accuracy and the seconds it took for every seed of
``--seeds`` (targets: >= 98 % and <= 30 s on two cores).  The split into
training, validation and test images is always the same (``load_digits(seed=0)``);
the seed drives the initial weights, the batch order and the shifts.

Part (b) times one training step (forward, softmax cross-entropy, backward,
SGD with momentum) of one network in cnncourse (NumPy) and its twin in
PyTorch on the CPU: same weights, same batch, float32, the same number of
threads for NumPy's BLAS (threadpoolctl), ``cnncourse.threads`` and PyTorch
(``torch.set_num_threads``); neither computes the gradient of the data.
Every figure is the median (and the minimum, steadier on a shared machine)
of ``--reps`` steps after warm-up steps; "ratio" is NumPy time / PyTorch
time (lower is better, target <= 1.5).  Done for the default
``lenet()`` (width 16, not the width-64 net of part (a)) on 8x8 digits
(batch 32, the training batch) and ``lenet28`` on 28x28 inputs (batch 64).
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import statistics
import sys
import time
from contextlib import nullcontext

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS now, so threadpool_limits also limits it)

import cnncourse as cc
from cnncourse import threads as cc_threads
from cnncourse import nn

PAUSE_S = 0.5  # lets one library's spinning worker threads go to sleep before the other runs

def train_lenet(seed: int = 0) -> tuple[float, float, float]:
    """(test accuracy, seconds of training, seconds per epoch) of lenet trained with LENET_RECIPE and ``seed``."""
    r = cc.models.LENET_RECIPE
    data = cc.data.load_digits(seed=0)  # the fixed split: the seed below never changes the test images
    X = np.concatenate([data.X_train, data.X_val])
    y = np.concatenate([data.y_train, data.y_val])
    mean, std = X.mean(), X.std()
    fit_data = ((X - mean) / std, y)
    augment = functools.partial(cc.data.random_shifts, max_shift=r["max_shift"], p=r["shift_p"], fill=float(-mean / std))
    start = time.perf_counter()
    model = cc.models.lenet(seed=seed, width=r["width"], dropout=r["dropout"])
    opt = cc.optim.Adam(model.parameters(), lr=r["lr"])
    cc.train.fit(model, opt, fit_data, epochs=r["epochs"], batch_size=r["batch_size"], seed=seed, progress=False,
                 augment=augment)
    opt.lr = r["fine_tune_lr"]
    cc.train.fit(model, opt, fit_data, epochs=r["fine_tune_epochs"], batch_size=r["batch_size"], seed=seed + 100,
                 progress=False, augment=augment)
    seconds = time.perf_counter() - start
    accuracy = cc.train.evaluate(model, (data.X_test - mean) / std, data.y_test)
    return accuracy, seconds, seconds / (r["epochs"] + r["fine_tune_epochs"])


def _torch_twin(model: nn.Sequential, torch):
    """The same network in torch.nn with our weights copied in (Linear weights transposed)."""
    tnn = torch.nn
    layers = []
    for layer in model.layers:
        if isinstance(layer, nn.Conv2d):
            t = tnn.Conv2d(layer.c_in, layer.c_out, layer.k, stride=layer.stride, padding=layer.pad,
                           dilation=layer.dilation, bias=layer.bias is not None)
            w = layer.weight.value
        elif isinstance(layer, nn.Linear):
            t = tnn.Linear(layer.d_in, layer.d_out, bias=layer.bias is not None)
            w = layer.weight.value.T
        elif isinstance(layer, nn.ReLU):
            layers.append(tnn.ReLU())
            continue
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(tnn.MaxPool2d(layer.size, layer.stride, layer.pad))
            continue
        elif isinstance(layer, nn.Flatten):
            layers.append(tnn.Flatten())
            continue
        elif isinstance(layer, nn.Dropout):
            layers.append(tnn.Dropout(layer.p))
            continue
        else:
            raise TypeError(f"no torch twin for {layer!r}")
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if layer.bias is not None:
                t.bias.copy_(torch.from_numpy(layer.bias.value))
        layers.append(t)
    return tnn.Sequential(*layers)


def _median_ms(step, reps: int, warmup: int = 3) -> tuple[float, float]:
    """(median, minimum) milliseconds per call; the minimum is the steadier figure on a busy machine."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def _numpy_step(model, X, y):
    opt = cc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        logits = model(X)
        _, dlogits = cc.losses.softmax_cross_entropy(logits, y)
        opt.zero_grad()
        model.backward_params(dlogits)  # like torch: no gradient for the data
        opt.step()

    return step


def bench_step(name, model, batch_shape, reps, torch, threads):
    rng = np.random.default_rng(0)
    X = rng.random(batch_shape, dtype=np.float32)
    y = rng.integers(0, 10, batch_shape[0])
    twin = _torch_twin(model, torch) if torch is not None else None
    ours, ours_min = _median_ms(_numpy_step(model, X, y), reps)
    row = {"net": name, "batch": batch_shape, "numpy_ms": ours, "numpy_min": ours_min}
    if twin is not None:
        time.sleep(PAUSE_S)
        torch.set_num_threads(threads)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        opt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)

        def torch_step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(twin(Xt), yt).backward()
            opt.step()

        row["torch_ms"], row["torch_min"] = _median_ms(torch_step, reps)
        row["ratio"] = ours / row["torch_ms"]
        row["ratio_min"] = ours_min / row["torch_min"]
        time.sleep(PAUSE_S)
    return row


def profile_step(model, batch_shape, top: int = 15) -> None:
    rng = np.random.default_rng(0)
    X = rng.random(batch_shape, dtype=np.float32)
    y = rng.integers(0, 10, batch_shape[0])
    step = _numpy_step(model, X, y)
    step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(50):
        step()
    prof.disable()
    print(f"\ncProfile, 50 steps of {batch_shape}: functions by total time spent in them (tottime)")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS, cnncourse.threads and PyTorch (default 2)")
    parser.add_argument("--reps", type=int, default=30, help="timed steps per measurement (median; default 30)")
    parser.add_argument("--no-train", action="store_true", help="skip part (a), the training run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                        help="part (a): train once per seed and print each (default: 0)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the NumPy steps")
    args = parser.parse_args(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: NumPy timings only")
    cc_threads.set_threads(args.threads)  # our copies and adds get the same thread count as BLAS and torch
    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.threads)
    except ImportError:
        limit = nullcontext()
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else "")
          + f", threads {args.threads}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    with limit:
        if not args.no_train:
            r = cc.models.LENET_RECIPE
            print(f"(a) lenet(width={r['width']}) on digits, LENET_RECIPE ({r['epochs']} + {r['fine_tune_epochs']} epochs):"
                  "  [targets >= 98 %, <= 30 s]")
            accs, times = [], []
            for seed in args.seeds:
                acc, seconds, per_epoch = train_lenet(seed)
                accs.append(acc)
                times.append(seconds)
                print(f"    seed {seed}: test accuracy {100 * acc:.2f} %, {seconds:.1f} s ({1e3 * per_epoch:.0f} ms/epoch)",
                      flush=True)
            if len(accs) > 1:
                print(f"    {len(accs)} seeds: mean {100 * np.mean(accs):.2f} %, worst {100 * min(accs):.2f} %, "
                      f"best {100 * max(accs):.2f} %; slowest {max(times):.1f} s")
        print("(b) one training step (forward, loss, backward, SGD momentum), float32, median (and minimum) of "
              f"{args.reps} steps:")
        print(f"    {'net':<8} {'batch':<16} {'numpy ms':>9} {'torch ms':>9} {'ratio':>6}   "
              f"{'min: numpy':>10} {'torch':>7} {'ratio':>6}")
        for name, model, shape in (("lenet", cc.models.lenet(seed=0), (32, 1, 8, 8)),
                                   ("lenet28", cc.models.lenet28(seed=0), (64, 1, 28, 28))):
            row = bench_step(name, model, shape, args.reps, torch, args.threads)
            torch_ms = f"{row['torch_ms']:9.2f}" if "torch_ms" in row else f"{'-':>9}"
            ratio = f"{row['ratio']:6.2f}" if "ratio" in row else f"{'-':>6}"
            mins = (f"{row['numpy_min']:10.2f} {row['torch_min']:7.2f} {row['ratio_min']:6.2f}" if "ratio" in row
                    else f"{row['numpy_min']:10.2f}")
            print(f"    {name:<8} {str(shape):<16} {row['numpy_ms']:9.2f} {torch_ms} {ratio}   {mins}")
        if args.profile:
            profile_step(cc.models.lenet(seed=0), (32, 1, 8, 8))
            profile_step(cc.models.lenet28(seed=0), (64, 1, 28, 28))


if __name__ == "__main__":
    main()
