// CUDA backend: one warp per row. A lane takes V = group_width(D) consecutive columns per step (16-byte loads of x
// and 8-byte loads of the 16-bit tensors when V = 4 and the pointers are aligned: A; the same columns one by one
// otherwise, so that the order of additions, which norm_cpu.cpp follows, does not depend on alignment). The row is
// read from DRAM once; its second and third passes hit the L1 cache (a row of 768 floats is 3 KB).
#include "backend.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace assay::fused_norm::detail {
namespace {

constexpr int kWarp = 32;
constexpr int kForwardWarps = 4;       // rows per forward block
constexpr int kBackwardWarps = 4;      // rows in flight per backward block
constexpr int kBlocksPerSm = 4;        // backward blocks per multiprocessor (each sums its rows' weight gradients)

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("fused_norm CUDA: ") + what + ": " + cudaGetErrorString(e));
}

struct DeviceLimits {
  int sms = 0, shared_optin = 0;
};

DeviceLimits limits() {
  static thread_local DeviceLimits cached[64];
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  auto& l = cached[device % 64];
  if (l.sms == 0) {
    check(cudaDeviceGetAttribute(&l.shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "attribute");
    check(cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, device), "attribute");
  }
  return l;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <bool FP16>
__device__ __forceinline__ unsigned short narrow(float v) {
  if constexpr (FP16) return __half_as_ushort(__float2half_rn(v));
  else return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

template <bool FP16>
__device__ __forceinline__ float widen(unsigned short bits) {
  if constexpr (FP16) return __half2float(__ushort_as_half(bits));
  else return __bfloat162float(__ushort_as_bfloat16(bits));
}

template <int V, bool A>
__device__ __forceinline__ void load(const float* p, float (&v)[V]) {
  if constexpr (V == 4 && A) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}

// Loads V weights (ones when there is no weight).
template <int V, bool A>
__device__ __forceinline__ void load_or(const float* p, int64_t c, float fill, float (&v)[V]) {
  if (p) load<V, A>(p + c, v);
  else for (int i = 0; i < V; ++i) v[i] = fill;
}

template <bool FP16, int V, bool A>
__device__ __forceinline__ void load16(const unsigned short* p, float (&v)[V]) {
  if constexpr (V == 4 && A) {
    const uint2 t = *reinterpret_cast<const uint2*>(p);
    v[0] = widen<FP16>(t.x & 0xffffu), v[1] = widen<FP16>(t.x >> 16);
    v[2] = widen<FP16>(t.y & 0xffffu), v[3] = widen<FP16>(t.y >> 16);
  } else {
    for (int i = 0; i < V; ++i) v[i] = widen<FP16>(p[i]);
  }
}

template <bool FP16, int V, bool A>
__device__ __forceinline__ void store16(unsigned short* p, const float (&v)[V]) {
  if constexpr (V == 4 && A) {
    uint2 t;
    t.x = narrow<FP16>(v[0]) | (static_cast<unsigned>(narrow<FP16>(v[1])) << 16);
    t.y = narrow<FP16>(v[2]) | (static_cast<unsigned>(narrow<FP16>(v[3])) << 16);
    *reinterpret_cast<uint2*>(p) = t;
  } else {
    for (int i = 0; i < V; ++i) p[i] = narrow<FP16>(v[i]);
  }
}

template <int V, bool A>
__device__ __forceinline__ void store(float* p, const float (&v)[V]) {
  if constexpr (V == 4 && A) *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else for (int i = 0; i < V; ++i) p[i] = v[i];
}

template <int V, bool A>
__device__ __forceinline__ void accumulate(float* p, const float (&v)[V]) {
  if constexpr (V == 4 && A) {
    float4 t = *reinterpret_cast<float4*>(p);
    t.x += v[0], t.y += v[1], t.z += v[2], t.w += v[3];
    *reinterpret_cast<float4*>(p) = t;
  } else {
    for (int i = 0; i < V; ++i) p[i] += v[i];
  }
}

template <bool FP16, int V, bool A>
__global__ void forward_kernel(ForwardProblem p) {
  const int lane = threadIdx.x % kWarp;
  const int64_t D = p.dim, step = static_cast<int64_t>(kWarp) * V;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kForwardWarps + threadIdx.x / kWarp; row < p.rows;
       row += static_cast<int64_t>(gridDim.x) * kForwardWarps) {
    const float* x = p.x + row * D;
    float v[V], mean = 0;
    if (!p.rms) {
      float sum = 0;
      for (int64_t c = lane * V; c < D; c += step) {
        load<V, A>(x + c, v);
        for (int i = 0; i < V; ++i) sum += v[i];
      }
      mean = warp_sum(sum) / static_cast<float>(D);
    }
    float squares = 0;
    for (int64_t c = lane * V; c < D; c += step) {
      load<V, A>(x + c, v);
      for (int i = 0; i < V; ++i) squares += (v[i] - mean) * (v[i] - mean);
    }
    const float rstd = 1.0f / sqrtf(warp_sum(squares) / static_cast<float>(D) + p.eps);
    auto* y = static_cast<unsigned short*>(p.y) + row * D;
    for (int64_t c = lane * V; c < D; c += step) {
      float w[V], b[V];
      load<V, A>(x + c, v);
      load_or<V, A>(p.weight, c, 1.0f, w);
      load_or<V, A>(p.bias, c, 0.0f, b);
      for (int i = 0; i < V; ++i) {
        v[i] = (v[i] - mean) * rstd;
        if (p.weight) v[i] *= w[i];
        if (p.bias) v[i] += b[i];
      }
      store16<FP16, V, A>(y + c, v);
    }
    if (lane == 0) p.mean[row] = mean, p.rstd[row] = rstd;
  }
}

// Each warp adds its rows' weight/bias gradients into its own slab of 2 * D floats: in shared memory (then the
// block adds its warps' slabs into partials[blockIdx]) or, when D is too large for that, in partials directly.
template <bool FP16, int V, bool A>
__global__ void backward_kernel(BackwardProblem p, float* partials, int warps, bool shared_slabs) {
  extern __shared__ float shared[];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t D = p.dim, step = static_cast<int64_t>(kWarp) * V;
  const bool sums = partials != nullptr;
  float* slab = nullptr;
  if (sums) {
    slab = shared_slabs ? shared + warp * 2 * D : partials + (static_cast<int64_t>(blockIdx.x) * warps + warp) * 2 * D;
    for (int64_t c = lane; c < 2 * D; c += kWarp) slab[c] = 0;
    __syncwarp();
  }
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * warps + warp; row < p.rows;
       row += static_cast<int64_t>(gridDim.x) * warps) {
    const float* x = p.x + row * D;
    const auto* dy = static_cast<const unsigned short*>(p.dy) + row * D;
    const float mean = p.mean[row], rstd = p.rstd[row];
    float xv[V], g[V], w[V], sum_wg = 0, sum_wg_xhat = 0;
    for (int64_t c = lane * V; c < D; c += step) {
      load<V, A>(x + c, xv);
      load16<FP16, V, A>(dy + c, g);
      load_or<V, A>(p.weight, c, 1.0f, w);
      for (int i = 0; i < V; ++i) {
        const float wg = p.weight ? w[i] * g[i] : g[i];
        sum_wg += wg;
        sum_wg_xhat += wg * ((xv[i] - mean) * rstd);
      }
    }
    // dx = rstd * (wg - mean(wg) - xhat * mean(wg * xhat)); RMSNorm has no mean(wg) term.
    const float a = p.rms ? 0.0f : warp_sum(sum_wg) / static_cast<float>(D);
    const float b = warp_sum(sum_wg_xhat) / static_cast<float>(D);
    for (int64_t c = lane * V; c < D; c += step) {
      float dx[V], dweight[V];
      load<V, A>(x + c, xv);
      load16<FP16, V, A>(dy + c, g);
      load_or<V, A>(p.weight, c, 1.0f, w);
      for (int i = 0; i < V; ++i) {
        const float xhat = (xv[i] - mean) * rstd, wg = p.weight ? w[i] * g[i] : g[i];
        dx[i] = rstd * (wg - a - xhat * b);
        dweight[i] = g[i] * xhat;
      }
      store<V, A>(p.dx + row * D + c, dx);
      if (sums) {
        accumulate<V, A>(slab + c, dweight);
        accumulate<V, A>(slab + D + c, g);
      }
    }
  }
  if (!sums || !shared_slabs) return;
  __syncthreads();
  for (int64_t c = threadIdx.x; c < 2 * D; c += blockDim.x) {
    float total = 0;
    for (int w = 0; w < warps; ++w) total += shared[w * 2 * D + c];
    partials[static_cast<int64_t>(blockIdx.x) * 2 * D + c] = total;
  }
}

// Sums `count` partials of 2 * D floats: a block of 32 x 8 threads takes 32 columns, its 8 rows of threads split
// the partials and add up in shared memory.
__global__ void sum_partials_kernel(const float* partials, int64_t count, int64_t D, float* dweight, float* dbias) {
  __shared__ float sums[8][kWarp + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kWarp + threadIdx.x;
  float total = 0;
  if (c < 2 * D) {
    for (int64_t k = threadIdx.y; k < count; k += 8) total += partials[k * 2 * D + c];
  }
  sums[threadIdx.y][threadIdx.x] = total;
  __syncthreads();
  if (threadIdx.y != 0 || c >= 2 * D) return;
  for (int k = 1; k < 8; ++k) total += sums[k][threadIdx.x];
  if (c < D) {
    if (dweight) dweight[c] = total;
  } else if (dbias) {
    dbias[c - D] = total;
  }
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }
bool aligned8(const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; }

struct BackwardPlan {
  int64_t blocks, partials;
  int warps;
  bool shared_slabs;
  size_t shared_bytes;
};

BackwardPlan backward_plan(int64_t rows, int64_t dim) {
  const auto l = limits();
  const size_t slab = 2 * sizeof(float) * static_cast<size_t>(dim);
  const int warps_fitting = static_cast<int>(std::min<size_t>(kBackwardWarps, l.shared_optin / slab));
  BackwardPlan plan{};
  plan.shared_slabs = warps_fitting >= 1;
  plan.warps = plan.shared_slabs ? warps_fitting : kBackwardWarps;
  plan.blocks = std::max<int64_t>(1, std::min<int64_t>((rows + plan.warps - 1) / plan.warps, int64_t{l.sms} * kBlocksPerSm));
  plan.partials = plan.shared_slabs ? plan.blocks : plan.blocks * plan.warps;
  plan.shared_bytes = plan.shared_slabs ? slab * plan.warps : 0;
  return plan;
}

template <bool FP16, int V, bool A>
void launch_backward(const BackwardProblem& p, float* partials, const BackwardPlan& plan, cudaStream_t stream) {
  auto* kernel = backward_kernel<FP16, V, A>;
  if (plan.shared_bytes > 48 * 1024) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.shared_bytes)),
          "shared memory size");
  }
  kernel<<<plan.blocks, plan.warps * kWarp, partials ? plan.shared_bytes : 0, stream>>>(p, partials, plan.warps,
                                                                                       plan.shared_slabs);
}

// Calls body(std::integral_constant<bool, FP16>, std::integral_constant<int, V>, std::integral_constant<bool, A>).
template <class Body>
void dispatch(bool fp16, int64_t dim, bool aligned, const Body& body) {
  using T = std::true_type;
  using F = std::false_type;
  using Four = std::integral_constant<int, 4>;
  using One = std::integral_constant<int, 1>;
  auto width = [&](auto half) {
    if (group_width(dim) == 1) body(half, One{}, F{});
    else if (aligned) body(half, Four{}, T{});
    else body(half, Four{}, F{});
  };
  if (fp16) width(T{});
  else width(F{});
}

}  // namespace

void forward_cuda(const ForwardProblem& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  const bool aligned = aligned16(p.x) && aligned16(p.weight) && aligned16(p.bias) && aligned8(p.y);
  const int64_t blocks = std::min<int64_t>((p.rows + kForwardWarps - 1) / kForwardWarps, int64_t{1} << 20);
  dispatch(p.fp16, p.dim, aligned, [&](auto fp16, auto v, auto a) {
    forward_kernel<decltype(fp16)::value, decltype(v)::value, decltype(a)::value>
        <<<blocks, kForwardWarps * kWarp, 0, stream>>>(p);
  });
  check(cudaGetLastError(), "forward launch");
}

int64_t backward_cuda_partials(int64_t rows, int64_t dim) { return backward_plan(rows, dim).partials; }

void backward_cuda(const BackwardProblem& p, float* partials, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  const auto plan = backward_plan(p.rows, p.dim);
  const bool aligned = aligned16(p.x) && aligned16(p.weight) && aligned16(p.dx) && aligned8(p.dy) && aligned16(partials);
  dispatch(p.fp16, p.dim, aligned, [&](auto fp16, auto v, auto a) {
    launch_backward<decltype(fp16)::value, decltype(v)::value, decltype(a)::value>(p, partials, plan, stream);
  });
  check(cudaGetLastError(), "backward launch");
  if (!partials) return;
  const dim3 threads(kWarp, 8);
  const int64_t blocks = (2 * p.dim + kWarp - 1) / kWarp;
  sum_partials_kernel<<<blocks, threads, 0, stream>>>(partials, plan.partials, p.dim, p.dweight, p.dbias);
  check(cudaGetLastError(), "weight gradient sum launch");
}

}  // namespace assay::fused_norm::detail
