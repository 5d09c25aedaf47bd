// CPU backend, float32. Each row's sums run in the CUDA kernel's order (32 lanes, lane l taking groups of
// group_width(D) consecutive columns l, l + 32, ... in turn, then a butterfly over the lanes), so the statistics,
// y and dx are bit-identical to CUDA's. The weight/bias gradients are summed over fixed chunks of rows, then over
// chunks in order (independent of the thread count; equal to CUDA's up to that order).
#include "backend.hpp"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace assay::fused_norm::detail {
namespace {

constexpr int kLanes = 32;
constexpr int64_t kChunkRows = 32;

uint16_t narrow(float v, bool fp16) {
  return fp16 ? c10::Half(v).x : c10::BFloat16(v).x;  // both round to nearest even
}

float widen(uint16_t bits, bool fp16) {
  return fp16 ? static_cast<float>(c10::Half(bits, c10::Half::from_bits()))
              : static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits()));
}

// sum over c < dim of term(c), in the CUDA kernel's order.
template <class Term>
float warp_order_sum(int64_t dim, const Term& term) {
  const int64_t group = group_width(dim);
  float lane[kLanes] = {};
  for (int l = 0; l < kLanes; ++l) {
    for (int64_t c = l * group; c < dim; c += kLanes * group) {
      for (int64_t i = 0; i < group; ++i) lane[l] += term(c + i);
    }
  }
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) {  // __shfl_xor_sync's butterfly
    float next[kLanes];
    for (int l = 0; l < kLanes; ++l) next[l] = lane[l] + lane[l ^ offset];
    std::copy(next, next + kLanes, lane);
  }
  return lane[0];
}

}  // namespace

void forward_cpu(const ForwardProblem& p) {
  const int64_t D = p.dim;
  at::parallel_for(0, p.rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = p.x + r * D;
      const float mean = p.rms ? 0.0f : warp_order_sum(D, [&](int64_t c) { return x[c]; }) / static_cast<float>(D);
      const float squares = warp_order_sum(D, [&](int64_t c) { return (x[c] - mean) * (x[c] - mean); });
      const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(D) + p.eps);
      auto* y = static_cast<uint16_t*>(p.y) + r * D;
      for (int64_t c = 0; c < D; ++c) {
        float v = (x[c] - mean) * rstd;
        if (p.weight) v *= p.weight[c];
        if (p.bias) v += p.bias[c];
        y[c] = narrow(v, p.fp16);
      }
      p.mean[r] = mean;
      p.rstd[r] = rstd;
    }
  });
}

void backward_cpu(const BackwardProblem& p) {
  const int64_t D = p.dim, chunks = (p.rows + kChunkRows - 1) / kChunkRows;
  const bool sums = p.dweight || p.dbias;
  std::vector<float> partial(sums ? chunks * 2 * D : 0, 0.0f);  // per chunk: [dweight | dbias]
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<float> g(D), wg(D), xhat(D);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      float* slab = sums ? partial.data() + chunk * 2 * D : nullptr;
      for (int64_t r = chunk * kChunkRows; r < std::min(p.rows, (chunk + 1) * kChunkRows); ++r) {
        const float* x = p.x + r * D;
        const auto* dy = static_cast<const uint16_t*>(p.dy) + r * D;
        const float mean = p.mean[r], rstd = p.rstd[r];
        for (int64_t c = 0; c < D; ++c) {
          g[c] = widen(dy[c], p.fp16);
          wg[c] = p.weight ? p.weight[c] * g[c] : g[c];
          xhat[c] = (x[c] - mean) * rstd;
        }
        // dx = rstd * (wg - mean(wg) - xhat * mean(wg * xhat)); RMSNorm has no mean(wg) term.
        const float a = p.rms ? 0.0f : warp_order_sum(D, [&](int64_t c) { return wg[c]; }) / static_cast<float>(D);
        const float b = warp_order_sum(D, [&](int64_t c) { return wg[c] * xhat[c]; }) / static_cast<float>(D);
        for (int64_t c = 0; c < D; ++c) {
          p.dx[r * D + c] = rstd * (wg[c] - a - xhat[c] * b);
          if (sums) {
            slab[c] += g[c] * xhat[c];
            slab[D + c] += g[c];
          }
        }
      }
    }
  });
  if (!sums) return;
  for (int64_t c = 0; c < D; ++c) {
    float w = 0, b = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      w += partial[chunk * 2 * D + c];
      b += partial[chunk * 2 * D + D + c];
    }
    if (p.dweight) p.dweight[c] = w;
    if (p.dbias) p.dbias[c] = b;
  }
}

}  // namespace assay::fused_norm::detail
