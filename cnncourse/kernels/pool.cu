// Max and average pooling over NCHW images, with stride and zero padding.
//
// Thread mapping
//   max_pool_forward / avg_pool_forward: one thread per output element;
//       i -> (n, c, oy, ox), ox fastest. The thread scans its KH x KW window.
//   max_pool_backward / avg_pool_backward: one thread per INPUT element;
//       i -> (n, c, iy, ix), ix fastest. The thread gathers the gradient of
//       every window that contains its pixel, so overlapping windows
//       (stride < kernel) need no atomics and the sum is deterministic.
//
// Max pooling: padded positions are never chosen (as in PyTorch); the
// arg-max is the row-major position k = ky*KW + kx INSIDE the window of the
// first maximum (ties -> first, like numpy.argmax; a NaN counts as the
// maximum, so the first NaN of a window wins, as in NumPy and PyTorch), stored as I
// (unsigned char when KH*KW <= 256, else int), the cache contract of
// cnncourse.pool.max_pool_forward.
// Average pooling: count_include_pad != 0 divides by KH*KW (padding counts
// as zeros); otherwise by the number of in-image positions of the window.

__device__ __forceinline__ int ceil_div_nonneg(int a, int b)
{
    // ceil(a / b) for b > 0 and any sign of a.
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

template <typename T, typename I>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ out,
                                 I* __restrict__ argmax,
                                 int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                                 int sy, int sx, int py, int px)
{
    const long long total = (long long)N * C * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ox = (int)(i % OW);
        const int oy = (int)((i / OW) % OH);
        const long long nc = i / ((long long)OW * OH);
        const T* plane = x + nc * H * W;
        const int y0 = oy * sy - py, x0 = ox * sx - px;
        T best = T(0);
        int best_k = -1;
        for (int ky = 0; ky < KH; ++ky) {
            const int iy = y0 + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; ++kx) {
                const int ix = x0 + kx;
                if (ix < 0 || ix >= W) continue;
                const T v = plane[(long long)iy * W + ix];
                // NaN propagates (as in NumPy and PyTorch): the first NaN wins and
                // stays, since no comparison with a NaN best is true.
                if (best_k < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    best_k = ky * KW + kx;
                }
            }
        }
        out[i] = best;
        argmax[i] = (I)best_k;
    }
}

template <typename T, typename I>
__global__ void max_pool_backward(const T* __restrict__ dout, const I* __restrict__ argmax,
                                  T* __restrict__ dx,
                                  int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                                  int sy, int sx, int py, int px)
{
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ix = (int)(i % W);
        const int iy = (int)((i / W) % H);
        const long long nc = i / ((long long)W * H);
        // Windows oy with oy*sy - py <= iy <= oy*sy - py + KH - 1.
        const int oy_lo = max(ceil_div_nonneg(iy + py - KH + 1, sy), 0);
        const int oy_hi = min((iy + py) / sy, OH - 1);
        const int ox_lo = max(ceil_div_nonneg(ix + px - KW + 1, sx), 0);
        const int ox_hi = min((ix + px) / sx, OW - 1);
        const long long obase = nc * OH * OW;
        T acc = T(0);
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            const int ky = iy - (oy * sy - py);  // this pixel's row inside window oy
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const int kx = ix - (ox * sx - px);
                const long long o = obase + (long long)oy * OW + ox;
                if ((int)argmax[o] == ky * KW + kx) acc += dout[o];
            }
        }
        dx[i] = acc;
    }
}

__device__ __forceinline__ int window_count(int y0, int x0, int H, int W, int KH, int KW,
                                            int count_include_pad)
{
    if (count_include_pad) return KH * KW;
    const int hy = min(y0 + KH, H) - max(y0, 0);
    const int hx = min(x0 + KW, W) - max(x0, 0);
    return max(hy, 0) * max(hx, 0);
}

template <typename T>
__global__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ out,
                                 int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                                 int sy, int sx, int py, int px, int count_include_pad)
{
    const long long total = (long long)N * C * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ox = (int)(i % OW);
        const int oy = (int)((i / OW) % OH);
        const long long nc = i / ((long long)OW * OH);
        const T* plane = x + nc * H * W;
        const int y0 = oy * sy - py, x0 = ox * sx - px;
        T acc = T(0);
        for (int ky = 0; ky < KH; ++ky) {
            const int iy = y0 + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; ++kx) {
                const int ix = x0 + kx;
                if (ix < 0 || ix >= W) continue;
                acc += plane[(long long)iy * W + ix];
            }
        }
        const int cnt = window_count(y0, x0, H, W, KH, KW, count_include_pad);
        out[i] = cnt > 0 ? acc / T(cnt) : T(0);
    }
}

template <typename T>
__global__ void avg_pool_backward(const T* __restrict__ dout, T* __restrict__ dx,
                                  int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                                  int sy, int sx, int py, int px, int count_include_pad)
{
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ix = (int)(i % W);
        const int iy = (int)((i / W) % H);
        const long long nc = i / ((long long)W * H);
        const int oy_lo = max(ceil_div_nonneg(iy + py - KH + 1, sy), 0);
        const int oy_hi = min((iy + py) / sy, OH - 1);
        const int ox_lo = max(ceil_div_nonneg(ix + px - KW + 1, sx), 0);
        const int ox_hi = min((ix + px) / sx, OW - 1);
        const long long obase = nc * OH * OW;
        T acc = T(0);
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const int cnt = window_count(oy * sy - py, ox * sx - px, H, W, KH, KW,
                                             count_include_pad);
                acc += dout[obase + (long long)oy * OW + ox] / T(cnt);
            }
        }
        dx[i] = acc;
    }
}
