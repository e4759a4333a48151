"""CPU benchmark: cnncourse convolution layer (naive loops, fast path) against PyTorch.

Usage::

    .venv/bin/python benchmarks/conv_cpu.py              # 2 threads, 5 reps
    .venv/bin/python benchmarks/conv_cpu.py --threads 1 --reps 9 --no-naive

Every timing is the median of ``--reps`` runs after one warm-up, in float32.
On a machine shared with other jobs, multi-threaded wall-clock timings swing
wildly (a BLAS thread waits for a descheduled sibling); ``--threads 1
--timer cpu --stat min`` measures the CPU time each library needs instead.
NumPy's BLAS and PyTorch get the same number of threads (threadpoolctl limits
the BLAS where it is installed).  "ratio" is our time / PyTorch's time, so
lower is better and 1.0 is parity.  The naive loops run only on the shapes
with the fewest output pixels, once (they take seconds).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS now, so threadpool_limits also limits it)

from cnncourse import conv, fastconv
from cnncourse import threads as cc_threads

# (N, C, H, W, F, k, stride, pad)
SHAPES = [
    (64, 1, 28, 28, 6, 5, 1, 0),
    (64, 6, 12, 12, 16, 5, 1, 0),
    (64, 32, 14, 14, 64, 3, 1, 1),
    (32, 64, 32, 32, 64, 3, 1, 1),
    (32, 64, 32, 32, 128, 3, 2, 1),
    (128, 1, 8, 8, 16, 3, 1, 1),
]
NAIVE_MAX_OUTPUTS = 150_000  # N*F*OH*OW above which the naive loops are skipped
PAUSE_S = 0.5  # lets one library's spinning worker threads go to sleep before the other runs


TIMER = time.perf_counter  # --timer cpu: time.process_time
STAT = statistics.median  # --stat min: min


def median_ms(fn, reps: int) -> float:
    """Milliseconds per call: the median (or --stat) of ``reps`` timed calls after a warm-up."""
    fn()  # warm-up: allocations, BLAS threads, torch's primitive cache
    times = []
    for _ in range(reps):
        start = TIMER()
        fn()
        times.append(TIMER() - start)
    return 1e3 * STAT(times)


def conv_flops(shape) -> float:
    n, c, h, w, f, k, s, p = shape
    oh, ow = conv.conv_output_size(h, k, stride=s, pad=p), conv.conv_output_size(w, k, stride=s, pad=p)
    return 2.0 * n * f * c * k * k * oh * ow


def make_inputs(shape):
    n, c, h, w, f, k, s, p = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((f, c, k, k), dtype=np.float32)
    b = rng.standard_normal(f, dtype=np.float32)
    out, _ = conv.conv_forward(x, wt, b, stride=s, pad=p)
    return x, wt, b, rng.standard_normal(out.shape, dtype=np.float32)


def bench_ours(shape, reps: int, naive: bool, algorithm=None):
    s, p = shape[6], shape[7]
    x, wt, b, dout = make_inputs(shape)

    def fwd():
        return conv.conv_forward(x, wt, b, stride=s, pad=p, algorithm=algorithm)

    def fwd_bwd():
        conv.conv_backward(dout, fwd()[1])

    row = {"fwd": median_ms(fwd, reps), "fb": median_ms(fwd_bwd, reps)}
    if naive:
        row["naive_fwd"] = median_ms(lambda: conv.conv_forward_naive(x, wt, b, stride=s, pad=p), 1)
    return row


def bench_torch(shape, reps: int, torch):
    s, p = shape[6], shape[7]
    F = torch.nn.functional
    x, wt, b, dout = make_inputs(shape)
    xt, wt_t, bt = (torch.from_numpy(a).requires_grad_() for a in (x, wt, b))
    dt = torch.from_numpy(dout)

    def torch_fb():
        xt.grad = wt_t.grad = bt.grad = None
        F.conv2d(xt, wt_t, bt, stride=s, padding=p).backward(dt)

    with torch.no_grad():
        row = {"torch_fwd": median_ms(lambda: F.conv2d(xt, wt_t, bt, stride=s, padding=p), reps)}
    row["torch_fb"] = median_ms(torch_fb, reps)
    return row


def bench_pool(reps: int, torch):
    """Max pooling 2x2 on (64, 32, 28, 28), if the cnncourse.pool module exists."""
    try:
        from cnncourse import pool
    except ImportError:
        return None
    forward, backward = getattr(pool, "max_pool_forward", None), getattr(pool, "max_pool_backward", None)
    if forward is None:
        return None
    x = np.random.default_rng(0).standard_normal((64, 32, 28, 28), dtype=np.float32)
    row = {"fwd": median_ms(lambda: forward(x, size=2, stride=2), reps)}
    if backward is not None:
        dout = np.ones_like(forward(x, size=2, stride=2)[0])
        row["fb"] = median_ms(lambda: backward(dout, forward(x, size=2, stride=2)[1]), reps)
    if torch is not None:
        time.sleep(PAUSE_S)
        xt = torch.from_numpy(x).requires_grad_()
        with torch.no_grad():
            row["torch_fwd"] = median_ms(lambda: torch.nn.functional.max_pool2d(xt, 2), reps)

        def torch_fb():
            xt.grad = None
            o = torch.nn.functional.max_pool2d(xt, 2)
            o.backward(torch.ones_like(o))

        row["torch_fb"] = median_ms(torch_fb, reps)
    return row


def bench_paths(reps: int) -> None:
    """Every CPU algorithm of conv_forward on every shape (ms), forced one at a time; * marks pick_path's choice."""
    print("\nCPU algorithms (fwd ms / f+b ms; * = the one conv_forward picks):")
    print(f"{'N,C,H,W,F,k,s,p':<26}" + "".join(f"{name:>18}" for name in conv.ALGORITHMS))
    for shape in SHAPES:
        n, c, h, w, f, k, s, p = shape
        out_hw = (conv.conv_output_size(h, k, stride=s, pad=p), conv.conv_output_size(w, k, stride=s, pad=p))
        chosen = fastconv.pick_path(make_inputs(shape)[0], k, k, out_hw)
        cells = []
        for name in conv.ALGORITHMS:
            row = bench_ours(shape, reps, naive=False, algorithm=name)
            cells.append(f"{'*' if name == chosen else ''}{row['fwd']:.2f} / {row['fb']:.2f}")
        print(f"{','.join(map(str, shape)):<26}" + "".join(f"{cell:>18}" for cell in cells))


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS, cnncourse.threads and PyTorch (default 2)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per measurement (median; default 5)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loops")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                        help="wall clock (default) or process CPU time; 'cpu' with --threads 1 resists a busy machine")
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="statistic over the reps")
    parser.add_argument("--paths", action="store_true", help="also time each CPU algorithm (cols, rows, taps) forced")
    args = parser.parse_args(argv)
    global TIMER, STAT
    TIMER = time.process_time if args.timer == "cpu" else time.perf_counter
    STAT = min if args.stat == "min" else statistics.median

    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch not installed: no reference column")
    cc_threads.set_threads(args.threads)  # our copies and adds get the same thread count as BLAS and torch
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        limits = nullcontext()

    print(f"float32, {args.threads} thread(s), {args.stat} of {args.reps}, {args.timer} time; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    head = (f"{'N,C,H,W,F,k,s,p':<26}{'naive fwd':>10}{'fwd ms':>9}{'GFLOP/s':>9}{'torch':>8}{'ratio':>7}"
            f"{'f+b ms':>9}{'torch':>8}{'ratio':>7}")
    print(head)
    print("-" * len(head))
    with limits:
        # All of ours first, then all of PyTorch's: both libraries keep their
        # worker threads spinning for a while after a call, and interleaving
        # them on a 2-core machine makes each fight the other's idle threads.
        rows = []
        for shape in SHAPES:
            n, c, h, w, f, k, s, p = shape
            outputs = n * f * conv.conv_output_size(h, k, stride=s, pad=p) * conv.conv_output_size(w, k, stride=s, pad=p)
            rows.append(bench_ours(shape, args.reps, not args.no_naive and outputs <= NAIVE_MAX_OUTPUTS))
        if torch is not None:
            time.sleep(PAUSE_S)
            for shape, row in zip(SHAPES, rows):
                row.update(bench_torch(shape, args.reps, torch))
        for shape, row in zip(SHAPES, rows):
            gflops = conv_flops(shape) / row["fwd"] / 1e6
            tf, tfb = row.get("torch_fwd"), row.get("torch_fb")
            print(f"{','.join(map(str, shape)):<26}{fmt(row.get('naive_fwd'), '.1f'):>10}{row['fwd']:>9.2f}{gflops:>9.1f}"
                  f"{fmt(tf):>8}{fmt(tf and row['fwd'] / tf):>7}{row['fb']:>9.2f}{fmt(tfb):>8}"
                  f"{fmt(tfb and row['fb'] / tfb):>7}")
        time.sleep(PAUSE_S)
        pool_row = bench_pool(args.reps, torch)
        if args.paths:
            bench_paths(args.reps)
    if pool_row is None:
        print("max pool 2x2: cnncourse.pool not available, skipped")
    else:
        tf, tfb, fb = pool_row.get("torch_fwd"), pool_row.get("torch_fb"), pool_row.get("fb")
        print(f"{'maxpool 2x2 64,32,28,28':<26}{'':>10}{pool_row['fwd']:>9.2f}{'':>9}{fmt(tf):>8}"
              f"{fmt(tf and pool_row['fwd'] / tf):>7}{fmt(fb):>9}{fmt(tfb):>8}{fmt(tfb and fb and fb / tfb):>7}")


if __name__ == "__main__":
    main()
