// CUDA backend. Same element arithmetic as the CPU (element.hpp); only the traversal differs:
//  - rows of 32-element blocks along a contiguous axis (inner == 1): 8 threads per block, 4 elements each (vector
//    loads), the block maximum reduced with warp shuffles;
//  - 32-element blocks along a strided axis (inner > 1): a warp = 8 adjacent block columns x 4 quarters of 8 rows,
//    each thread's 8 values held in registers (one read), the block maximum reduced with warp shuffles;
//  - anything else (other block sizes): one thread per block column, reading it twice (the second pass hits the
//    cache), consecutive threads on consecutive columns.
// Stochastic rounding steps the counter of uniform() by adding kGolden per index (stream_counter) instead of
// recomputing it per element: the same bits.
#include "backend.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace assay::mx::detail {
namespace {

constexpr int kThreads = 256;

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

// Rows (inner == 1) of blocks of 32: thread = 4 consecutive elements, 8 threads = one block.
template <int R, int K, bool kVector>
__global__ void rows32_kernel(Problem p, Thresholds param) {
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t blocks_per_row = (p.length + 31) / 32;
  const int64_t threads_needed = p.outer * blocks_per_row * 8;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  // (row, block in row) of this thread; the stride is whole blocks (blockDim.x is a multiple of 8).
  Walk at((blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 8, stride / 8, blocks_per_row, 1);
  const int lane = static_cast<int>(threadIdx.x % 8) * 4;
  // Every thread runs the same number of iterations so that the shuffles see whole warps.
  for (int64_t base = blockIdx.x * int64_t(blockDim.x); base < threads_needed; base += stride, at.next(blocks_per_row, 1)) {
    const bool active = base + threadIdx.x < threads_needed;
    const int64_t k0 = at.b * 32 + lane;  // first element of this thread in its row
    const int64_t offset = at.o * p.length + k0;
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    // In a row's last block, threads past the row's end read nothing (their lanes would be the next row's).
    if (active && k0 < p.length) {
      if (kVector) {
        const float4 q = *reinterpret_cast<const float4*>(p.in + offset);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
      } else {
        for (int j = 0; j < 4; ++j) v[j] = k0 + j < p.length ? p.in[offset + j] : 0.0f;
      }
    }
    float amax = nan_max(nan_max(fabsf(v[0]), fabsf(v[1])), nan_max(fabsf(v[2]), fabsf(v[3])));
    for (int lanes = 1; lanes < 8; lanes <<= 1) amax = nan_max(amax, __shfl_xor_sync(0xffffffffu, amax, lanes));
    if (!active) continue;
    const SharedScale s = shared_scale(amax, p.emax, th);
    uint64_t z = R == kStochastic ? stream_counter(p.seed, static_cast<uint64_t>(offset)) : 0;
    float y[4];
    for (int j = 0; j < 4; ++j, z += kGolden) {
      const float u = R == kStochastic ? uniform_at(z) : 0.0f;
      y[j] = s.nan ? NAN : element<R, K>(v[j] * s.down, p.format, th, u) * s.up;
    }
    if (kVector) {
      if (k0 < p.length) *reinterpret_cast<float4*>(p.out + offset) = make_float4(y[0], y[1], y[2], y[3]);
    } else {
      for (int j = 0; j < 4; ++j) {
        if (k0 + j < p.length) p.out[offset + j] = y[j];
      }
    }
  }
}

// Blocks of 32 along a strided axis (inner > 1): a warp = 8 consecutive block columns (outer, block, inner column) x
// 4 quarters of 8 rows; thread = one quarter of one column, its 8 values kept in registers between the maximum
// (combined over the 4 quarters with shuffles) and the rounding: one global read, and each row of a warp's loads
// and stores is 8 consecutive floats (whole 32-byte sectors).
template <int R, int K>
__global__ void strided32_kernel(Problem p, Thresholds param) {
  __shared__ Thresholds th;
  load_thresholds(th, param);
  const int64_t blocks = (p.length + 31) / 32;
  const int64_t warps_needed = (p.outer * blocks * p.inner + 7) / 8;
  const int64_t warp_stride = int64_t(gridDim.x) * blockDim.x / 32;
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int quarter = static_cast<int>(threadIdx.x % 32) / 8;
  Walk at(warp * 8 + threadIdx.x % 8, warp_stride * 8, blocks, p.inner);
  const uint64_t z_step = static_cast<uint64_t>(p.inner) * kGolden;  // counter step from element k to k + 1
  // Every thread runs the same number of iterations so that the shuffles see whole warps.
  for (int64_t w = warp; w < warps_needed; w += warp_stride, at.next(blocks, p.inner)) {
    const bool active = at.o < p.outer;
    const int64_t k0 = at.b * 32 + quarter * 8;
    const int rows = active ? static_cast<int>(max(int64_t{0}, min(int64_t{8}, p.length - k0))) : 0;  // tail block
    const int64_t first = (at.o * p.length + k0) * p.inner + at.i;
    float v[8];
    int64_t e = first;
#pragma unroll
    for (int j = 0; j < 8; ++j, e += p.inner) v[j] = j < rows ? p.in[e] : 0.0f;
    float amax = nan_max(nan_max(nan_max(fabsf(v[0]), fabsf(v[1])), nan_max(fabsf(v[2]), fabsf(v[3]))),
                         nan_max(nan_max(fabsf(v[4]), fabsf(v[5])), nan_max(fabsf(v[6]), fabsf(v[7]))));
    for (int lanes = 8; lanes < 32; lanes <<= 1) amax = nan_max(amax, __shfl_xor_sync(0xffffffffu, amax, lanes));
    if (rows == 0) continue;
    const SharedScale s = shared_scale(amax, p.emax, th);
    uint64_t z = R == kStochastic ? stream_counter(p.seed, static_cast<uint64_t>(first)) : 0;
    e = first;
#pragma unroll
    for (int j = 0; j < 8; ++j, e += p.inner, z += z_step) {
      if (j < rows) {
        const float u = R == kStochastic ? uniform_at(z) : 0.0f;
        p.out[e] = s.nan ? NAN : element<R, K>(v[j] * s.down, p.format, th, u) * s.up;
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
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t at = (o * p.length + k) * p.inner + i;
      const float u = R == kStochastic ? uniform(p.seed, static_cast<uint64_t>(at)) : 0.0f;
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
    const int64_t threads = p.outer * ((p.length + 31) / 32) * 8;
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
