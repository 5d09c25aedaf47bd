// CUDA backend. Same element arithmetic as the CPU (element.hpp); only the traversal differs:
//  - rows of 32-element blocks along a contiguous axis (inner == 1): 4 threads per block, 8 elements each (two
//    float4 loads), the block maximum reduced with warp shuffles;
//  - 32-element blocks along a strided axis (inner > 1): one thread per block column, its 32 values held in registers
//    (one read), consecutive threads on consecutive columns (coalesced);
//  - anything else (other block sizes): one thread per block column, reading it twice (the second pass hits the
//    cache), consecutive threads on consecutive columns.
// The kernels are instruction-bound more than memory-bound (stochastic rounding above all), hence: the format's kind
// is a template argument (no per-element branch on it), per-block work is amortized over 8-32 elements per thread,
// grid-stride positions advance by carries instead of int64 divisions, and stochastic rounding steps the counter of
// uniform() by additions of kGolden (stream_counter/uniform_at: the same bits as uniform(seed, index)).
#include "backend.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace assay::mx::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerThread = 8;  // elements per thread of rows32_kernel

__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }

// The format's kind (quantize_element's template arguments) is a template argument of every kernel: resolving it per
// element at run time cost a branch and a reconvergence per element (the kernels are instruction-bound when rounding
// stochastically).
enum ElementKind : int { kFloatSaturate, kFloatOverflow, kInteger };
template <int R, int K>
__device__ __forceinline__ float element(float s, const ElementFormat& f, const Thresholds& th, float u) {
  return quantize_element<R, K != kInteger, K != kFloatOverflow>(s, f, th, u);
}

__device__ __forceinline__ void load_thresholds(Thresholds& shared, const Thresholds& param) {
  for (int i = threadIdx.x; i < kThresholdCount; i += blockDim.x) shared.fraction[i] = param.fraction[i];
  __syncthreads();
}

template <int R, int K>
__global__ void elementwise_kernel(Problem p, Thresholds param) {
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t n = p.outer * p.length * p.inner;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  uint64_t z = stream_counter(p.seed, static_cast<uint64_t>(first));
  const uint64_t z_step = static_cast<uint64_t>(stride) * kGolden;
  for (int64_t i = first; i < n; i += stride, z += z_step) {
    const float u = R == kStochastic ? uniform_at(z) : 0.0f;
    p.out[i] = element<R, K>(p.in[i], p.format, th, u);
  }
}

// Position (o, b, i) of a flat index (o * blocks + b) * inner + i, advanced by a fixed step with carries: the int64
// divisions (a long software sequence on the GPU) happen once per thread, not once per grid-stride iteration.
struct Walk {
  int64_t o, b, i, step_o, step_b, step_i;
  __device__ Walk(int64_t index, int64_t step, int64_t blocks, int64_t inner)
      : o(index / inner / blocks), b(index / inner % blocks), i(index % inner),
        step_o(step / inner / blocks), step_b(step / inner % blocks), step_i(step % inner) {}
  __device__ void next(int64_t blocks, int64_t inner) {
    o += step_o, b += step_b, i += step_i;
    if (i >= inner) i -= inner, ++b;
    if (b >= blocks) b -= blocks, ++o;  // b + step_b + 1 < 2 * blocks: one carry at most
  }
};

// The largest magnitude of v (NaN if any is NaN), as a tree.
template <int N>
__device__ __forceinline__ float max_magnitude(const float (&v)[N]) {
  float m[N];
#pragma unroll
  for (int j = 0; j < N; ++j) m[j] = fabsf(v[j]);
#pragma unroll
  for (int w = N / 2; w > 0; w /= 2) {
#pragma unroll
    for (int j = 0; j < N / 2; ++j) {
      if (j < w) m[j] = nan_max(m[j], m[j + w]);
    }
  }
  return m[0];
}

// y = Q(v * down) * up for N values of one block, NaN for a NaN block. Element j's counter is z + j * step, plus
// `jump` after every 4 elements, stepped by additions. Every value is rounded (padding too, discarded by the caller)
// and the NaN block selected afterwards, so that the loop has no branch per element.
template <int R, int K, int N>
__device__ __forceinline__ void round_block(const float (&v)[N], float (&y)[N], const SharedScale& s, const Problem& p,
                                            const Thresholds& th, uint64_t z, uint64_t step, uint64_t jump) {
#pragma unroll
  for (int j = 0; j < N; ++j, z += step) {
    if (j > 0 && j % 4 == 0) z += jump;
    const float u = R == kStochastic ? uniform_at(z) : 0.0f;
    const float q = element<R, K>(v[j] * s.down, p.format, th, u) * s.up;
    y[j] = s.nan ? NAN : q;
  }
}

// Rows (inner == 1) of blocks of 32: T = 32 / N threads per block, thread t holding float4s t, t + T, ... of it
// (each warp-wide load covers whole 32-byte sectors), the block maximum combined with shuffles. N elements per thread
// amortize the per-block work (indices, shuffles, shared_scale): the kernel is instruction-bound. (Measured: N = 8
// beats 4, 16 and 32.)
template <int R, int K, bool kVector>
__global__ void rows32_kernel(Problem p, Thresholds param) {
  constexpr int N = kRowsPerThread, T = 32 / N;
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t blocks_per_row = (p.length + 31) / 32;
  const int64_t threads_needed = p.outer * blocks_per_row * T;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  // (row, block in row) of this thread; the stride is whole blocks (blockDim.x is a multiple of T).
  Walk at((blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / T, stride / T, blocks_per_row, 1);
  const int lane = static_cast<int>(threadIdx.x % T) * 4;
  // Every thread runs the same number of iterations so that the shuffles see whole warps.
  for (int64_t base = blockIdx.x * int64_t(blockDim.x); base < threads_needed; base += stride, at.next(blocks_per_row, 1)) {
    const bool active = base + threadIdx.x < threads_needed;
    const int64_t k0 = at.b * 32 + lane;  // element j of this thread: k0 + (j / 4) * 4 * T + j % 4 of row at.o
    const int64_t offset = at.o * p.length + k0;
    float v[N];
#pragma unroll
    for (int g = 0; g < N / 4; ++g) {
      // Past a row's end read nothing (the next row's elements). kVector: length % 4 == 0, so a float4 lies wholly
      // inside the row or wholly past its end.
      const int d = g * 4 * T;
      if (kVector) {
        float4 q = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (active && k0 + d < p.length) q = *reinterpret_cast<const float4*>(p.in + offset + d);
        v[4 * g] = q.x, v[4 * g + 1] = q.y, v[4 * g + 2] = q.z, v[4 * g + 3] = q.w;
      } else {
        for (int j = 0; j < 4; ++j) v[4 * g + j] = active && k0 + d + j < p.length ? p.in[offset + d + j] : 0.0f;
      }
    }
    float amax = max_magnitude(v);
    for (int lanes = 1; lanes < T; lanes <<= 1) amax = nan_max(amax, __shfl_xor_sync(0xffffffffu, amax, lanes));
    if (!active) continue;
    float y[N];
    const uint64_t z = R == kStochastic ? stream_counter(p.seed, static_cast<uint64_t>(offset)) : 0;
    round_block<R, K>(v, y, shared_scale(amax, p.emax, th), p, th, z, kGolden, uint64_t{4 * T - 4} * kGolden);
#pragma unroll
    for (int g = 0; g < N / 4; ++g) {
      const int d = g * 4 * T;
      if (kVector) {
        if (k0 + d < p.length) {
          *reinterpret_cast<float4*>(p.out + offset + d) = make_float4(y[4 * g], y[4 * g + 1], y[4 * g + 2], y[4 * g + 3]);
        }
      } else {
        for (int j = 0; j < 4; ++j) {
          if (k0 + d + j < p.length) p.out[offset + d + j] = y[4 * g + j];
        }
      }
    }
  }
}

// Blocks of 32 along a strided axis (inner > 1): thread = one block column (outer, block, inner column), its 32 values
// kept in registers between the maximum and the rounding (one global read; the loops are unrolled so that they stay
// in registers, and the 32 loads are in flight together). Consecutive threads take consecutive inner columns, so each
// row of a warp's loads and stores is contiguous. (Measured against 8 or 16 rows per thread with the maximum
// combined by shuffles: 32 rounds fastest, the per-block work being amortized over the most elements.)
template <int R, int K>
__global__ void strided32_kernel(Problem p, Thresholds param) {
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t blocks = (p.length + 31) / 32;
  const int64_t n = p.outer * blocks * p.inner;
  const int64_t first_column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  Walk at(first_column, stride, blocks, p.inner);
  const uint64_t z_step = static_cast<uint64_t>(p.inner) * kGolden;  // counter step from element k to k + 1
  for (int64_t c = first_column; c < n; c += stride, at.next(blocks, p.inner)) {
    const int64_t k0 = at.b * 32;
    const int rows = static_cast<int>(min(int64_t{32}, p.length - k0));  // fewer in a tail block
    const int64_t first = (at.o * p.length + k0) * p.inner + at.i;
    // Pointers stepped by `inner` (not first + j * inner: a 64-bit multiply per element), never past the block's
    // last row (so never past the tensor's end); a full block steps unconditionally (the tail's predicated steps
    // cost ~10% of this kernel's bandwidth when every block takes them).
    const float* in = p.in + first;
    float v[32];
    if (rows == 32) {
      v[0] = *in;
#pragma unroll
      for (int j = 1; j < 32; ++j) v[j] = *(in += p.inner);
    } else {
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        v[j] = j < rows ? *in : 0.0f;
        if (j + 1 < rows) in += p.inner;
      }
    }
    float y[32];
    const uint64_t z = R == kStochastic ? stream_counter(p.seed, static_cast<uint64_t>(first)) : 0;
    round_block<R, K>(v, y, shared_scale(max_magnitude(v), p.emax, th), p, th, z, z_step, 0);
    float* out = p.out + first;
    if (rows == 32) {
      *out = y[0];
#pragma unroll
      for (int j = 1; j < 32; ++j) *(out += p.inner) = y[j];
    } else {
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        if (j < rows) *out = y[j];
        if (j + 1 < rows) out += p.inner;
      }
    }
  }
}

// Any layout (the fallback for other block sizes): thread = one (outer, block, inner column).
template <int R, int K>
__global__ void columns_kernel(Problem p, Thresholds param) {
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t blocks = (p.length + p.block_size - 1) / p.block_size;
  const int64_t n = p.outer * blocks * p.inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < n; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = c % p.inner, b = (c / p.inner) % blocks, o = c / (p.inner * blocks);
    const int64_t k0 = b * p.block_size, k1 = min(p.length, k0 + p.block_size);
    float amax = 0.0f;
    for (int64_t k = k0; k < k1; ++k) amax = nan_max(amax, fabsf(p.in[(o * p.length + k) * p.inner + i]));
    const SharedScale s = shared_scale(amax, p.emax, th);
    const uint64_t z_step = static_cast<uint64_t>(p.inner) * kGolden;
    uint64_t z = stream_counter(p.seed, static_cast<uint64_t>((o * p.length + k0) * p.inner + i));
    for (int64_t k = k0; k < k1; ++k, z += z_step) {
      const int64_t at = (o * p.length + k) * p.inner + i;
      const float u = R == kStochastic ? uniform_at(z) : 0.0f;
      p.out[at] = s.nan ? NAN : element<R, K>(p.in[at] * s.down, p.format, th, u) * s.up;
    }
  }
}

int grid_for(int64_t threads) {
  return static_cast<int>(std::min<int64_t>((threads + kThreads - 1) / kThreads, 8192));
}

template <int R, int K>
void launch_kernel(const Problem& p, const Thresholds& th, cudaStream_t stream) {
  if (!p.blocked) {
    elementwise_kernel<R, K><<<grid_for(p.outer * p.length * p.inner), kThreads, 0, stream>>>(p, th);
  } else if (p.inner == 1 && p.block_size == 32) {
    const int64_t threads = p.outer * ((p.length + 31) / 32) * (32 / kRowsPerThread);
    const bool vector = p.length % 4 == 0 && reinterpret_cast<uintptr_t>(p.in) % 16 == 0 &&
                        reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
    if (vector) {
      rows32_kernel<R, K, true><<<grid_for(threads), kThreads, 0, stream>>>(p, th);
    } else {
      rows32_kernel<R, K, false><<<grid_for(threads), kThreads, 0, stream>>>(p, th);
    }
  } else if (p.block_size == 32) {
    strided32_kernel<R, K><<<grid_for(p.outer * ((p.length + 31) / 32) * p.inner), kThreads, 0, stream>>>(p, th);
  } else {
    const int64_t columns = p.outer * ((p.length + p.block_size - 1) / p.block_size) * p.inner;
    columns_kernel<R, K><<<grid_for(columns), kThreads, 0, stream>>>(p, th);
  }
}

template <int R>
void launch(const Problem& p, const Thresholds& th, cudaStream_t stream) {
  if (!p.format.is_float) {
    launch_kernel<R, kInteger>(p, th, stream);
  } else if (p.format.saturate) {
    launch_kernel<R, kFloatSaturate>(p, th, stream);
  } else {
    launch_kernel<R, kFloatOverflow>(p, th, stream);
  }
}

}  // namespace

void quantize_cuda(const Problem& p, const Thresholds& th, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  switch (p.rounding) {
    case kNearest: launch<kNearest>(p, th, stream); break;
    case kEven: launch<kEven>(p, th, stream); break;
    case kFloor: launch<kFloor>(p, th, stream); break;
    default: launch<kStochastic>(p, th, stream); break;
  }
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string("mx CUDA kernel launch failed: ") + cudaGetErrorString(error));
}

}  // namespace assay::mx::detail
