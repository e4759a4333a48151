// Per-channel reductions for batch normalisation over an NCHW array.
//   forward:  sum_{n,h,w} x            and  sum_{n,h,w} x*x
//   backward: sum_{n,h,w} dout         and  sum_{n,h,w} dout*xhat
// One kernel serves both: it sums a and a*b per channel (b = a when has_b == 0).
//
// Thread mapping
//   grid = (C, S), block = CS_BLOCK threads (fixed: the shared buffers are
//   sized by it). Block (c, s) owns channel c and slice s of its N*H*W values:
//   thread t visits j = s*CS_BLOCK + t, j += S*CS_BLOCK, with j -> (n, p) =
//   (j / HW, j % HW) and address (n*C + c)*HW + p, so a warp reads a
//   contiguous run of one image plane. Each thread accumulates in double
//   (float32 sums of many values lose digits), the block reduces in shared
//   memory, and thread 0 writes the two partial sums to part_a[c*S + s] and
//   part_ab[c*S + s]. The wrapper adds the S partials of each channel (a
//   second, tiny reduction) -- no atomics, so results are deterministic.

#define CS_BLOCK 256

template <typename T>
__global__ void channel_sums(const T* __restrict__ a, const T* __restrict__ b, int has_b,
                             int N, int C, int HW,
                             double* __restrict__ part_a, double* __restrict__ part_ab)
{
    __shared__ double s_a[CS_BLOCK];
    __shared__ double s_ab[CS_BLOCK];
    const int c = blockIdx.x, s = blockIdx.y, S = gridDim.y;
    const int t = threadIdx.x;
    const long long count = (long long)N * HW;

    double acc_a = 0.0, acc_ab = 0.0;
    for (long long j = (long long)s * CS_BLOCK + t; j < count; j += (long long)S * CS_BLOCK) {
        const long long n = j / HW, p = j % HW;
        const long long idx = (n * C + c) * HW + p;
        const double va = (double)a[idx];
        const double vb = has_b ? (double)b[idx] : va;
        acc_a += va;
        acc_ab += va * vb;
    }
    s_a[t] = acc_a;
    s_ab[t] = acc_ab;
    __syncthreads();
    for (int half = CS_BLOCK / 2; half > 0; half >>= 1) {
        if (t < half) {
            s_a[t] += s_a[t + half];
            s_ab[t] += s_ab[t + half];
        }
        __syncthreads();
    }
    if (t == 0) {
        part_a[c * S + s] = s_a[0];
        part_ab[c * S + s] = s_ab[0];
    }
}
