// ReLU forward and backward, elementwise over a contiguous array of any shape.
//
// Thread mapping: one thread per element; i -> flat index (grid-stride loop).
//   forward:  out[i] = max(x[i], 0); NaN passes through, like numpy.maximum.
//   backward: dx[i]  = dout[i] if x[i] > 0 else 0 (the sub-gradient at 0 is 0).

template <typename T>
__global__ void relu_forward(const T* __restrict__ x, T* __restrict__ out, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const T v = x[i];
        out[i] = (v > T(0) || v != v) ? v : T(0);
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
