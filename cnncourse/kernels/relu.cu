// ReLU forward and backward, elementwise over a contiguous array of any shape.
//
// Thread mapping: one thread per element; i -> flat index (grid-stride loop).
//   relu_forward:       out[i] = max(x[i], 0) (NaN passes through, like numpy.maximum);
//                       when want_mask != 0 also positive[i] = x[i] > 0, the cache
//                       of cnncourse.activations.relu_forward.
//   relu_backward:      dx[i] = dout[i] if x[i] > 0 else 0 (the sub-gradient at 0 is 0).
//   relu_backward_mask: dx[i] = dout[i] if positive[i] else 0 (mask from the forward pass).

template <typename T>
__global__ void relu_forward(const T* __restrict__ x, T* __restrict__ out,
                             bool* __restrict__ positive, int want_mask, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const T v = x[i];
        const bool pos = v > T(0);
        out[i] = (pos || v != v) ? v : T(0);
        if (want_mask) positive[i] = pos;
    }
}

template <typename T>
__global__ void relu_backward(const T* __restrict__ dout, const T* __restrict__ x,
                              T* __restrict__ dx, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        dx[i] = x[i] > T(0) ? dout[i] : T(0);
    }
}

template <typename T>
__global__ void relu_backward_mask(const T* __restrict__ dout, const bool* __restrict__ positive,
                                   T* __restrict__ dx, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        dx[i] = positive[i] ? dout[i] : T(0);
    }
}
