// CPU backend: float32 arithmetic, rows in parallel. The weight/bias gradients are summed over fixed chunks of rows
// and then over chunks in order, so they do not depend on the number of threads.
#include "backend.hpp"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace assay::fused_norm::detail {
namespace {

constexpr int64_t kChunkRows = 32;

uint16_t to_bits(float v, bool fp16) {
  return fp16 ? c10::Half(v).x : c10::BFloat16(v).x;  // both round to nearest even
}

float from_bits(uint16_t bits, bool fp16) {
  return fp16 ? static_cast<float>(c10::Half(bits, c10::Half::from_bits())) :
                static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits()));
}

}  // namespace

void forward_cpu(const ForwardProblem& p) {
  const int64_t D = p.dim;
  at::parallel_for(0, p.rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = p.x + r * D;
      float mean = 0;
      if (!p.rms) {
        float sum = 0;
        for (int64_t c = 0; c < D; ++c) sum += x[c];
        mean = sum / static_cast<float>(D);
      }
      float squares = 0;
      for (int64_t c = 0; c < D; ++c) squares += (x[c] - mean) * (x[c] - mean);
      const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(D) + p.eps);
      auto* y = static_cast<uint16_t*>(p.y) + r * D;
      for (int64_t c = 0; c < D; ++c) {
        float v = (x[c] - mean) * rstd;
        if (p.weight) v *= p.weight[c];
        if (p.bias) v += p.bias[c];
        y[c] = to_bits(v, p.fp16);
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
    std::vector<float> g(D);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      float* dw = sums ? partial.data() + chunk * 2 * D : nullptr;
      for (int64_t r = chunk * kChunkRows; r < std::min(p.rows, (chunk + 1) * kChunkRows); ++r) {
        const float* x = p.x + r * D;
        const auto* dy = static_cast<const uint16_t*>(p.dy) + r * D;
        const float mean = p.mean[r], rstd = p.rstd[r];
        // dx = rstd * (wg - mean(wg) - xhat * mean(wg * xhat)), wg = weight * dy (RMSNorm: no mean(wg) term).
        float sum_wg = 0, sum_wg_xhat = 0;
        for (int64_t c = 0; c < D; ++c) {
          g[c] = from_bits(dy[c], p.fp16);
          const float wg = p.weight ? p.weight[c] * g[c] : g[c], xhat = (x[c] - mean) * rstd;
          sum_wg += wg;
          sum_wg_xhat += wg * xhat;
          if (sums) {
            dw[c] += g[c] * xhat;
            dw[D + c] += g[c];
          }
        }
        const float a = p.rms ? 0.0f : sum_wg / static_cast<float>(D), b = sum_wg_xhat / static_cast<float>(D);
        for (int64_t c = 0; c < D; ++c) {
          const float wg = p.weight ? p.weight[c] * g[c] : g[c], xhat = (x[c] - mean) * rstd;
          p.dx[r * D + c] = rstd * (wg - a - xhat * b);
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
