// Direct 2D convolution forward (cross-correlation, as in deep learning),
// NCHW input x (N, C, H, W), weights w (F, C, KH, KW), optional bias b (F,):
//   out[n, f, oy, ox] = b[f] + sum_{c, ky, kx} w[f, c, ky, kx]
//                       * x[n, c, oy*sy - py + ky*dy, ox*sx - px + kx*dx]
// (zero outside the image). Meant for small kernels (3x3, 5x5): no im2col
// matrix is built; the input patch is staged in shared memory instead.
//
// Thread mapping
//   grid  = (ceil(OW / TW), ceil(OH / TH), min(N * ceil(F / FB), 65535)),  block = (TW, TH).
//   z -> (n, filter group g) for z = blockIdx.z, blockIdx.z + gridDim.z, ...
//   (a grid-stride loop: CUDA caps gridDim.z at 65,535, and N * ceil(F / FB)
//   exceeds it for large batches); thread (tx, ty) -> output pixel
//   (oy, ox) = (blockIdx.y*TH + ty, blockIdx.x*TW + tx) of image n and computes
//   it for the FB filters f = g*FB .. g*FB + FB - 1 (register accumulators).
//   Channels are walked in chunks of CT: all threads of the block first copy
//   the input patch the tile needs, (CT, PH, PW) with
//   PH = (TH-1)*sy + (KH-1)*dy + 1 and PW = (TW-1)*sx + (KW-1)*dx + 1, and the
//   weights (FB, CT, KH, KW) into dynamic shared memory, then every thread
//   reads its taps from there. Each input value is fetched from global
//   memory once per block instead of once per tap and filter.
//   Dynamic shared memory: (CT*PH*PW + FB*CT*KH*KW) * sizeof(T) bytes,
//   chosen by the Python wrapper (cnncourse.kernels.direct_conv_geometry).

template <typename T, int FB>
__global__ void conv_forward_direct(const T* __restrict__ x, const T* __restrict__ w,
                                    const T* __restrict__ b, int has_bias, T* __restrict__ out,
                                    int N, int C, int H, int W, int F, int KH, int KW,
                                    int OH, int OW, int sy, int sx, int py, int px,
                                    int dy, int dx, int CT)
{
    extern __shared__ __align__(sizeof(double)) unsigned char smem_raw[];
    T* s_x = reinterpret_cast<T*>(smem_raw);

    const int TW = blockDim.x, TH = blockDim.y;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * TW + tx, nthreads = TW * TH;
    const int PH = (TH - 1) * sy + (KH - 1) * dy + 1;
    const int PW = (TW - 1) * sx + (KW - 1) * dx + 1;
    const int KK = KH * KW;
    T* s_w = s_x + CT * PH * PW;

    const int groups = (F + FB - 1) / FB;
    const int oy0 = blockIdx.y * TH, ox0 = blockIdx.x * TW;
    const int oy = oy0 + ty, ox = ox0 + tx;
    const int iy0 = oy0 * sy - py, ix0 = ox0 * sx - px;  // top-left of the patch

    // Every thread of the block runs the same number of iterations (z does not
    // depend on the thread), so the barriers inside stay uniform.
    for (int z = blockIdx.z; z < N * groups; z += gridDim.z) {
        const int n = z / groups;
        const int f0 = (z % groups) * FB;
        T acc[FB];
#pragma unroll
        for (int f = 0; f < FB; ++f) acc[f] = T(0);

        for (int c0 = 0; c0 < C; c0 += CT) {
            const int ct = min(CT, C - c0);
            // Stage the input patch; zeros stand in for padding and the channel tail.
            for (int j = tid; j < CT * PH * PW; j += nthreads) {
                const int c = j / (PH * PW), r = j % (PH * PW);
                const int iy = iy0 + r / PW, ix = ix0 + r % PW;
                T v = T(0);
                if (c < ct && iy >= 0 && iy < H && ix >= 0 && ix < W)
                    v = x[(((long long)n * C + c0 + c) * H + iy) * W + ix];
                s_x[j] = v;
            }
            // Stage the weights of this filter group and channel chunk.
            for (int j = tid; j < FB * CT * KK; j += nthreads) {
                const int f = j / (CT * KK), r = j % (CT * KK);
                const int c = r / KK, k = r % KK;
                T v = T(0);
                if (f0 + f < F && c < ct) v = w[((long long)(f0 + f) * C + c0 + c) * KK + k];
                s_w[j] = v;
            }
            __syncthreads();
            for (int c = 0; c < ct; ++c) {
                const T* xp = s_x + c * PH * PW + (ty * sy) * PW + tx * sx;
                const T* wp = s_w + c * KK;
                for (int ky = 0; ky < KH; ++ky) {
                    for (int kx = 0; kx < KW; ++kx) {
                        const T v = xp[(ky * dy) * PW + kx * dx];
                        const int k = ky * KW + kx;
#pragma unroll
                        for (int f = 0; f < FB; ++f) acc[f] += v * wp[f * CT * KK + k];
                    }
                }
            }
            __syncthreads();  // the next chunk overwrites shared memory
        }

        if (oy < OH && ox < OW) {
#pragma unroll
            for (int f = 0; f < FB; ++f) {
                if (f0 + f < F) {
                    const T bias = has_bias ? b[f0 + f] : T(0);
                    out[(((long long)n * F + f0 + f) * OH + oy) * OW + ox] = acc[f] + bias;
                }
            }
        }
    }
}
