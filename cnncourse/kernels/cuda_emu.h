// cnncourse CUDA emulator: the CUDA execution model for a host C++ compiler.
//
// A course kernel (cnncourse/kernels/*.cu, or a student's string) is compiled
// UNMODIFIED as C++17 after this header; cnncourse/kernels/emulator.py writes a
// small wrapper that includes both and exports one extern "C" entry point per
// template instantiation. What the header provides:
//
//   * the qualifiers __global__, __device__, __host__, __forceinline__,
//     __restrict__, __align__(n), __constant__, __launch_bounds__(...);
//   * threadIdx / blockIdx / blockDim / gridDim (3-D), warpSize;
//   * __shared__ arrays, one copy per block (thread_local storage: the blocks of
//     a launch run one after the other on one OS thread), and
//     `extern __shared__` dynamic shared memory sized by the launch;
//   * __syncthreads() as a real barrier: every thread of a block is a fiber
//     (ucontext) with its own stack; a fiber that reaches the barrier hands
//     control back to the scheduler, which resumes the others, and only when
//     ALL threads of the block wait at the SAME __syncthreads() call does
//     anyone go on. A block where some threads wait while others have returned,
//     or wait at another __syncthreads() call, is reported as an error;
//   * atomicAdd / atomicSub / atomicMax / atomicMin / atomicExch / atomicCAS
//     (exact: threads switch only at barriers), __threadfence() (no-op),
//     min / max overloads and the <cmath> functions, __ldg, rsqrt(f), __expf...
//
// Not modelled: warps (warp intrinsics such as __shfl_*_sync, __ballot_sync and
// __syncwarp fail at compile time, naming themselves), memory coalescing,
// caches, memory spaces other than shared/global, real concurrency between
// blocks, speed.
#pragma once

#if defined(__APPLE__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 600  // macOS hides the (deprecated, still working) ucontext functions otherwise
#endif

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CNNCOURSE_EMU_ASAN 1
#else
#define CNNCOURSE_EMU_ASAN 0
#endif

// ----------------------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#define __launch_bounds__(...)
#define __managed__
// Block-scope thread_local is implicitly static: one copy shared by every fiber
// (thread) of the running block. `extern __shared__ T name[]` becomes an extern
// thread_local array that the generated wrapper defines with the emulator's
// maximum dynamic shared size.
#define __shared__ thread_local
#define __CUDACC_EMULATED__ 1

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct double2 { double x, y; };
struct int2 { int x, y; };

namespace cnncourse_emu {

// One launch, as the Python side describes it (layout mirrored by ctypes).
struct Launch {
    unsigned int grid[3];
    unsigned int block[3];
    long long dynamic_shared;   // bytes of `extern __shared__` memory
    unsigned long long seed;    // order of blocks and threads in shuffle mode
    int shuffle;                // 0: blocks and threads in index order; 1: permuted
    int fill_shared;            // fill dynamic shared memory with 0xFF (NaN) before each block
};

struct State {
    uint3 thread_idx{0, 0, 0};
    uint3 block_idx{0, 0, 0};
    dim3 block_dim{1, 1, 1};
    dim3 grid_dim{1, 1, 1};
    // fibers
    bool fibers = false;         // false: the kernel has no barrier, threads are plain calls
    ucontext_t scheduler;
    ucontext_t* current = nullptr;
    int current_thread = -1;
    void* barrier_site = nullptr;  // return address of the __syncthreads() being waited at
    int waiting = 0;
    char error[1024] = {0};
#if CNNCOURSE_EMU_ASAN
    void* fake_stack = nullptr;
    const void* sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
#endif
};

inline State& state() {
    static thread_local State s;
    return s;
}

}  // namespace cnncourse_emu

// The built-in variables read the emulator state, which the scheduler updates
// before it runs or resumes each thread.
#define threadIdx (::cnncourse_emu::state().thread_idx)
#define blockIdx (::cnncourse_emu::state().block_idx)
#define blockDim (::cnncourse_emu::state().block_dim)
#define gridDim (::cnncourse_emu::state().grid_dim)
static constexpr int warpSize = 32;

// ----------------------------------------------------------------------------- math
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline auto min(A a, B b) -> std::common_type_t<A, B> {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return std::fmin(C(a), C(b));
    else return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline auto max(A a, B b) -> std::common_type_t<A, B> {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return std::fmax(C(a), C(b));
    else return C(a) < C(b) ? C(b) : C(a);
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
template <class T> inline T __ldg(const T* p) { return *p; }
using std::isnan;
using std::isinf;
using std::isfinite;

// ----------------------------------------------------------------------------- atomics
// Exact without locks: the blocks run one after another on one OS thread and
// the threads of a block switch only at __syncthreads().
template <class T> inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <class T> inline T atomicSub(T* p, T v) { T old = *p; *p = old - v; return old; }
template <class T> inline T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
template <class T> inline T atomicMax(T* p, T v) { T old = *p; *p = old < v ? v : old; return old; }
template <class T> inline T atomicMin(T* p, T v) { T old = *p; *p = v < old ? v : old; return old; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }
inline void __threadfence() {}
inline void __threadfence_block() {}

// ----------------------------------------------------------------------------- not modelled: fail naming them
#define CNNCOURSE_EMU_UNSUPPORTED(name)                                                              \
    template <class... A> inline int name(A...) {                                                    \
        static_assert(sizeof...(A) > 1000, "cnncourse emulator: " #name                               \
                      " is not supported (warps and warp intrinsics are not modelled; "             \
                      "use shared memory and __syncthreads())");                                     \
        return 0;                                                                                    \
    }
CNNCOURSE_EMU_UNSUPPORTED(__shfl_sync)
CNNCOURSE_EMU_UNSUPPORTED(__shfl_up_sync)
CNNCOURSE_EMU_UNSUPPORTED(__shfl_down_sync)
CNNCOURSE_EMU_UNSUPPORTED(__shfl_xor_sync)
CNNCOURSE_EMU_UNSUPPORTED(__shfl)
CNNCOURSE_EMU_UNSUPPORTED(__shfl_down)
CNNCOURSE_EMU_UNSUPPORTED(__ballot_sync)
CNNCOURSE_EMU_UNSUPPORTED(__any_sync)
CNNCOURSE_EMU_UNSUPPORTED(__all_sync)
CNNCOURSE_EMU_UNSUPPORTED(__activemask)
CNNCOURSE_EMU_UNSUPPORTED(__syncwarp)
CNNCOURSE_EMU_UNSUPPORTED(__reduce_add_sync)
CNNCOURSE_EMU_UNSUPPORTED(__match_any_sync)
CNNCOURSE_EMU_UNSUPPORTED(__syncthreads_count)
CNNCOURSE_EMU_UNSUPPORTED(__syncthreads_and)
CNNCOURSE_EMU_UNSUPPORTED(__syncthreads_or)
CNNCOURSE_EMU_UNSUPPORTED(clock64)
CNNCOURSE_EMU_UNSUPPORTED(__nanosleep)

// ----------------------------------------------------------------------------- the barrier

namespace cnncourse_emu {

// Called by a fiber: park at the barrier and let the scheduler run the others.
static __attribute__((noinline)) void barrier(void* site);

}  // namespace cnncourse_emu

static __attribute__((noinline)) void __syncthreads() {
    ::cnncourse_emu::barrier(__builtin_return_address(0));
}

// ----------------------------------------------------------------------------- the scheduler

namespace cnncourse_emu {

#if CNNCOURSE_EMU_ASAN
constexpr size_t kStackBytes = 512 * 1024;
#else
constexpr size_t kStackBytes = 128 * 1024;
#endif

enum FiberStatus { kReady = 0, kWaiting = 1, kDone = 2 };

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    int status = kReady;
    uint3 tid{0, 0, 0};
    void* site = nullptr;
};

struct Scheduler {
    std::vector<Fiber> fibers;
    std::vector<int> order;
    void (*body)(void*) = nullptr;
    void* body_arg = nullptr;
};

inline Scheduler*& scheduler() {
    static thread_local Scheduler* sch = nullptr;
    return sch;
}

inline void fiber_entry(unsigned int lo, unsigned int hi) {
    (void)lo; (void)hi;
    State& s = state();
#if CNNCOURSE_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &s.sched_stack_bottom, &s.sched_stack_size);
#endif
    Scheduler* sch = scheduler();
    const int me = s.current_thread;
    sch->body(sch->body_arg);
    sch->fibers[me].status = kDone;
#if CNNCOURSE_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, s.sched_stack_bottom, s.sched_stack_size);
#endif
    setcontext(&s.scheduler);  // never returns; uc_link is not used
}

static __attribute__((noinline)) void barrier(void* site) {
    State& s = state();
    if (!s.fibers) {
        std::snprintf(s.error, sizeof s.error,
                      "__syncthreads() called in a kernel compiled without barrier support");
        std::fprintf(stderr, "cnncourse emulator: %s\n", s.error);
        std::abort();
    }
    Scheduler* sch = scheduler();
    Fiber& f = sch->fibers[s.current_thread];
    f.status = kWaiting;
    f.site = site;
#if CNNCOURSE_EMU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, s.sched_stack_bottom, s.sched_stack_size);
    swapcontext(&f.ctx, &s.scheduler);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&f.ctx, &s.scheduler);
#endif
    // Resumed: the scheduler restored threadIdx for this fiber.
}

inline unsigned long long splitmix(unsigned long long& x) {
    unsigned long long z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline void permute(std::vector<int>& v, unsigned long long& rng) {
    for (size_t i = v.size(); i > 1; --i) {
        size_t j = (size_t)(splitmix(rng) % i);
        std::swap(v[i - 1], v[j]);
    }
}

inline void describe_block(char* buf, size_t n, const uint3& b) {
    std::snprintf(buf, n, "block (%u, %u, %u)", b.x, b.y, b.z);
}

// Run one block whose threads are fibers. Returns 0, or 1 with state().error set.
inline int run_block_fibers(Scheduler& sch, const Launch& L, unsigned long long& rng) {
    State& s = state();
    const int nthreads = (int)sch.fibers.size();
    for (int t = 0; t < nthreads; ++t) {
        Fiber& f = sch.fibers[t];
        f.status = kReady;
        f.site = nullptr;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, (void (*)())fiber_entry, 2, 0u, 0u);
    }
    std::vector<int>& order = sch.order;
    for (;;) {
        if (L.shuffle) permute(order, rng);
        int ran = 0;
        for (int k = 0; k < nthreads; ++k) {
            const int t = order[k];
            Fiber& f = sch.fibers[t];
            if (f.status == kDone) continue;
            f.status = kReady;
            ++ran;
            s.current_thread = t;
            s.thread_idx = f.tid;
#if CNNCOURSE_EMU_ASAN
            void* fake = nullptr;
            __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
            swapcontext(&s.scheduler, &f.ctx);
            __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
            swapcontext(&s.scheduler, &f.ctx);
#endif
        }
        if (ran == 0) return 0;  // every thread returned
        // Every live thread is now waiting at a barrier or has returned.
        int waiting = 0, done = 0;
        void* site = nullptr;
        bool divergent = false;
        for (const Fiber& f : sch.fibers) {
            if (f.status == kWaiting) {
                if (waiting == 0) site = f.site;
                else if (f.site != site) divergent = true;
                ++waiting;
            } else if (f.status == kDone) {
                ++done;
            }
        }
        if (waiting == 0) return 0;
        char where[64];
        describe_block(where, sizeof where, s.block_idx);
        if (done > 0) {
            std::snprintf(s.error, sizeof s.error,
                          "%s: %d of %d threads wait at __syncthreads() while %d have already returned; "
                          "every thread of a block must reach every __syncthreads() (no early return before a barrier, "
                          "no barrier inside a branch that only some threads take)",
                          where, waiting, nthreads, done);
            return 1;
        }
        if (divergent) {
            std::snprintf(s.error, sizeof s.error,
                          "%s: the threads wait at different __syncthreads() calls (a barrier inside a branch "
                          "or a loop that not all threads of the block take the same way)", where);
            return 1;
        }
    }
}

// Defined by the generated wrapper: prepares dynamic shared memory for a block
// (fills the launch's bytes with 0xFF, a NaN pattern, so a read before any
// write shows; under AddressSanitizer the bytes past the launch's size are poisoned).
void block_start(const Launch& L);

template <class F>
inline int run(const Launch& L, bool use_fibers, F&& call_kernel) {
    State& s = state();
    s.error[0] = 0;
    s.grid_dim = dim3(L.grid[0], L.grid[1], L.grid[2]);
    s.block_dim = dim3(L.block[0], L.block[1], L.block[2]);
    s.fibers = use_fibers;
    const long long nblocks = (long long)L.grid[0] * L.grid[1] * L.grid[2];
    const int nthreads = (int)(L.block[0] * L.block[1] * L.block[2]);
    if (nblocks <= 0 || nthreads <= 0 || nthreads > 1024) {
        std::snprintf(s.error, sizeof s.error, "invalid launch: grid (%u, %u, %u), block (%u, %u, %u) "
                      "(a block has 1..1024 threads)", L.grid[0], L.grid[1], L.grid[2],
                      L.block[0], L.block[1], L.block[2]);
        return 1;
    }
    unsigned long long rng = L.seed * 0x2545F4914F6CDD1DULL + 12345;
    std::vector<long long> block_order;
    if (L.shuffle) {
        block_order.resize((size_t)nblocks);
        for (long long b = 0; b < nblocks; ++b) block_order[(size_t)b] = b;
        for (size_t i = block_order.size(); i > 1; --i) {
            size_t j = (size_t)(splitmix(rng) % i);
            std::swap(block_order[i - 1], block_order[j]);
        }
    }
    std::vector<uint3> tids((size_t)nthreads);
    for (int t = 0; t < nthreads; ++t)
        tids[(size_t)t] = uint3{(unsigned)(t % L.block[0]), (unsigned)((t / L.block[0]) % L.block[1]),
                                (unsigned)(t / (L.block[0] * L.block[1]))};
    std::vector<int> order((size_t)nthreads);
    for (int t = 0; t < nthreads; ++t) order[(size_t)t] = t;

    Scheduler sch;
    auto trampoline = [](void* p) { (*static_cast<std::remove_reference_t<F>*>(p))(); };
    sch.body = trampoline;
    sch.body_arg = &call_kernel;
    if (use_fibers) {
        sch.fibers.resize((size_t)nthreads);
        for (int t = 0; t < nthreads; ++t) {
            sch.fibers[(size_t)t].stack = static_cast<char*>(std::malloc(kStackBytes));
            sch.fibers[(size_t)t].tid = tids[(size_t)t];
        }
        sch.order = order;
    }
    scheduler() = &sch;
    int rc = 0;
    for (long long k = 0; k < nblocks && rc == 0; ++k) {
        const long long b = L.shuffle ? block_order[(size_t)k] : k;
        s.block_idx = uint3{(unsigned)(b % L.grid[0]), (unsigned)((b / L.grid[0]) % L.grid[1]),
                            (unsigned)(b / ((long long)L.grid[0] * L.grid[1]))};
        block_start(L);
        if (use_fibers) {
            rc = run_block_fibers(sch, L, rng);
        } else {
            if (L.shuffle) permute(order, rng);
            for (int k2 = 0; k2 < nthreads; ++k2) {
                const int t = order[(size_t)k2];
                s.current_thread = t;
                s.thread_idx = tids[(size_t)t];
                call_kernel();
            }
        }
    }
    scheduler() = nullptr;
    for (Fiber& f : sch.fibers) std::free(f.stack);
    return rc;
}

// Call `fn` with arguments unpacked from `args` (each points to one value of
// the parameter's type, as in CUDA's kernelParams).
template <class... P, size_t... I>
inline void call_unpacked(void (*fn)(P...), void** args, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

template <class... P>
inline int launch(void (*fn)(P...), const Launch& L, void** args, bool use_fibers) {
    auto call = [fn, args]() { call_unpacked(fn, args, std::index_sequence_for<P...>{}); };
    return run(L, use_fibers, call);
}

template <class... P>
inline int param_count(void (*)(P...)) { return (int)sizeof...(P); }

template <class... P>
inline void param_sizes(void (*)(P...), int* out) {
    int i = 0;
    ((out[i++] = (int)sizeof(std::remove_cv_t<std::remove_reference_t<P>>)), ...);
}

}  // namespace cnncourse_emu
