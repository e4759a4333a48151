// im2col / col2im for NCHW images, with stride, zero padding and dilation.
//
// Thread mapping
//   im2col: one thread per column element; i -> (n, c, ky, kx, oy, ox), ox fastest.
//           The thread reads x[n, c, oy*sy - py + ky*dy, ox*sx - px + kx*dx]
//           (0 outside the image) and writes it to the column matrix.
//   col2im: one thread per INPUT element; i -> (n, c, iy, ix), ix fastest.
//           The thread gathers (sums) every column entry that was copied from
//           its pixel, so no two threads write the same address: no atomics,
//           and the result is deterministic.
//
// The column matrix is addressed through six element strides
// (s_n, s_c, s_ky, s_kx, s_oy, s_ox) chosen by the Python wrapper, so one
// kernel serves any column layout; the package uses that of im2col_cpu,
// cols[n, (c*KH + ky)*KW + kx, oy*OW + ox], for which the im2col thread order
// walks memory in order (coalesced writes).
// Indices are 64-bit and the loops are grid-stride loops, so any grid size is
// correct; the wrapper caps the grid.

template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols,
                       int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                       int sy, int sx, int py, int px, int dy, int dx,
                       long long s_n, long long s_c, long long s_ky, long long s_kx,
                       long long s_oy, long long s_ox)
{
    const long long total = (long long)N * C * KH * KW * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long r = i;
        const int ox = (int)(r % OW); r /= OW;
        const int oy = (int)(r % OH); r /= OH;
        const int kx = (int)(r % KW); r /= KW;
        const int ky = (int)(r % KH); r /= KH;
        const int c  = (int)(r % C);  r /= C;
        const int n  = (int)r;
        const int iy = oy * sy - py + ky * dy;
        const int ix = ox * sx - px + kx * dx;
        T v = T(0);
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
            v = x[(((long long)n * C + c) * H + iy) * W + ix];
        }
        cols[n * s_n + c * s_c + ky * s_ky + kx * s_kx + oy * s_oy + ox * s_ox] = v;
    }
}

template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ x,
                       int N, int C, int H, int W, int KH, int KW, int OH, int OW,
                       int sy, int sx, int py, int px, int dy, int dx,
                       long long s_n, long long s_c, long long s_ky, long long s_kx,
                       long long s_oy, long long s_ox)
{
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long r = i;
        const int ix = (int)(r % W); r /= W;
        const int iy = (int)(r % H); r /= H;
        const int c  = (int)(r % C); r /= C;
        const int n  = (int)r;
        const T* base = cols + n * s_n + c * s_c;
        T acc = T(0);
        for (int ky = 0; ky < KH; ++ky) {
            // Output row oy read this pixel through tap ky iff oy*sy = iy + py - ky*dy.
            const int ty = iy + py - ky * dy;
            if (ty < 0 || ty % sy != 0) continue;
            const int oy = ty / sy;
            if (oy >= OH) continue;
            for (int kx = 0; kx < KW; ++kx) {
                const int tx = ix + px - kx * dx;
                if (tx < 0 || tx % sx != 0) continue;
                const int ox = tx / sx;
                if (ox >= OW) continue;
                acc += base[ky * s_ky + kx * s_kx + oy * s_oy + ox * s_ox];
            }
        }
        x[i] = acc;
    }
}
