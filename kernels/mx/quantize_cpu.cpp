// CPU backend: parallel over blocks (at::parallel_for), the shared element arithmetic of element.hpp. The loops are
// compiled for baseline x86-64 and, picked at run time, hand-written AVX2 on 8 lanes: blocks along a row, blocks
// along a strided axis (8 columns per register, a scale per lane) and elementwise rounding, every rounding mode
// (stochastic draws the same SplitMix64 stream as the scalar code, 4 x 64-bit lanes at a time). Neither variant may
// contract a*b+c into an FMA: the project builds with -std=c++20 (ISO), whose default is -ffp-contract=off, and AVX2
// alone brings no FMA.
#include "backend.hpp"

#include <ATen/Parallel.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include "lanes_avx2.hpp"
#endif

#include <algorithm>

namespace assay::mx::detail {
namespace {

constexpr int64_t kColumnChunk = 64;  // columns of a strided block handled together (their scales live on the stack)

// Quantizes n contiguous values scaled by `down` (then `up`), elements numbered from `first` for stochastic rounding.
template <int R, bool kIsFloat, bool kSaturate>
inline void run_contiguous(const float* in, float* out, int64_t n, float down, float up, const ElementFormat& f,
                           const Thresholds& th, uint64_t seed, uint64_t first) {
  for (int64_t k = 0; k < n; ++k) {
    const float u = R == kStochastic ? uniform(seed, first + static_cast<uint64_t>(k)) : 0.0f;
    out[k] = quantize_element<R, kIsFloat, kSaturate>(in[k] * down, f, th, u) * up;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// AVX2 loops over the lanes of lanes_avx2.hpp.
template <int R, bool kIsFloat, bool kSaturate>
__attribute__((target("avx2"))) void run_contiguous_avx2(const float* in, float* out, int64_t n, float down, float up,
                                                         const ElementFormat& f, const Thresholds& th, uint64_t seed,
                                                         uint64_t first) {
  int64_t k = 0;
  if constexpr (kIsFloat && !kSaturate && (R == kNearest || R == kEven)) {
    if (f.mbits == 9 && f.min_exp == -126 && down == 1.0f && up == 1.0f) {  // bf16 elementwise: on the bits
      for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, avx2::bf16_element<R>(_mm256_loadu_ps(in + k)));
      return run_contiguous<R, kIsFloat, kSaturate>(in + k, out + k, n - k, down, up, f, th, seed, first + static_cast<uint64_t>(k));
    }
  }
  const __m256 vdown = _mm256_set1_ps(down), vup = _mm256_set1_ps(up);
  const avx2::GatherThresholds thresholds(th);
  avx2::Uniforms uniforms;
  if constexpr (R == kStochastic) uniforms.start(seed, first);
  for (; k + 8 <= n; k += 8) {
    const __m256 u = R == kStochastic ? uniforms.next() : _mm256_setzero_ps();
    const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(in + k), vdown);
    _mm256_storeu_ps(out + k, _mm256_mul_ps(avx2::element<R, kIsFloat, kSaturate>(s, f, thresholds, u), vup));
  }
  run_contiguous<R, kIsFloat, kSaturate>(in + k, out + k, n - k, down, up, f, th, seed, first + static_cast<uint64_t>(k));
}

// The largest magnitude of 8 lanes, NaN when any lane is NaN (max_ps would drop it).
__attribute__((target("avx2"))) inline float lane_max(__m256 amax, __m256 unordered) {
  const __m128 half = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  const __m128 quarter = _mm_max_ps(half, _mm_movehl_ps(half, half));
  const float m = _mm_cvtss_f32(_mm_max_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1)));
  return _mm256_movemask_ps(unordered) != 0 ? NAN : m;
}

// shared_scale of 8 blocks at once. Lanes outside the common case (a zero, subnormal, Inf or NaN maximum, a scale
// beyond 2^+-126) take the scalar function. poisoned: all-ones where the block comes out all-NaN.
struct BlockScales {
  alignas(32) float down[8], up[8];
  alignas(32) uint32_t poisoned[8];
};
__attribute__((target("avx2"))) inline void shared_scales(const float* maxima, int emax, const avx2::GatherThresholds& lookup,
                                                          BlockScales& out) {
  const __m256i bits = _mm256_load_si256(reinterpret_cast<const __m256i*>(maxima));
  const __m256i field = _mm256_srli_epi32(bits, 23);
  const __m256i unbiased = _mm256_sub_epi32(field, _mm256_set1_epi32(127));
  const __m256i fraction = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
  const __m256i se = _mm256_sub_epi32(_mm256_sub_epi32(unbiased, lookup.up(unbiased, fraction)), _mm256_set1_epi32(emax));
  _mm256_store_ps(out.down, avx2::pow2(_mm256_sub_epi32(_mm256_setzero_si256(), se)));
  _mm256_store_ps(out.up, avx2::pow2(se));
  _mm256_store_si256(reinterpret_cast<__m256i*>(out.poisoned), _mm256_setzero_si256());
  const __m256i common = _mm256_and_si256(
      _mm256_and_si256(_mm256_cmpgt_epi32(field, _mm256_setzero_si256()), _mm256_cmpgt_epi32(_mm256_set1_epi32(255), field)),
      _mm256_and_si256(_mm256_cmpgt_epi32(se, _mm256_set1_epi32(-127)), _mm256_cmpgt_epi32(_mm256_set1_epi32(127), se)));
  const int fast = _mm256_movemask_ps(_mm256_castsi256_ps(common));
  if (fast == 0xff) return;
  for (int i = 0; i < 8; ++i) {
    if ((fast >> i) & 1) continue;
    const SharedScale s = shared_scale(maxima[i], emax, lookup.th);
    out.down[i] = s.down;
    out.up[i] = s.up;
    out.poisoned[i] = s.nan ? 0xffffffffu : 0u;
  }
}

// Whole blocks of a row (inner == 1, block_size a multiple of 8), 8 blocks at a time: the block maxima on 8 lanes,
// their scales together, then the elements on 8 lanes; elements numbered from `first`. The same operations as
// blocked_rows' scalar path.
template <int R, bool kIsFloat, int kTables>
__attribute__((target("avx2"))) void run_blocks_avx2(const float* in, float* out, int64_t blocks, int64_t block_size,
                                                      int emax, const ElementFormat& f, const Thresholds& th,
                                                      uint64_t seed, uint64_t first) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const avx2::RegisterThresholds<kTables> thresholds(th, f.min_exp);
  const avx2::GatherThresholds scale_thresholds(th);
  avx2::Uniforms uniforms;
  for (int64_t b0 = 0; b0 < blocks; b0 += 8) {
    const int group = static_cast<int>(std::min<int64_t>(8, blocks - b0));
    alignas(32) float maxima[8] = {};
    for (int j = 0; j < group; ++j) {
      const float* block = in + (b0 + j) * block_size;
      __m256 amax = _mm256_setzero_ps(), unordered = _mm256_setzero_ps();
      for (int64_t k = 0; k < block_size; k += 8) {
        const __m256 v = _mm256_loadu_ps(block + k);
        amax = _mm256_max_ps(amax, _mm256_and_ps(v, abs_mask));
        unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      }
      maxima[j] = lane_max(amax, unordered);
    }
    BlockScales scales;
    shared_scales(maxima, emax, scale_thresholds, scales);
    for (int j = 0; j < group; ++j) {
      const int64_t b = b0 + j;
      const float* block_in = in + b * block_size;
      float* block_out = out + b * block_size;
      if (scales.poisoned[j]) {
        std::fill(block_out, block_out + block_size, NAN);
        continue;
      }
      // (re)started per block: a NaN block draws nothing, and the stream must stay tied to element indices
      if constexpr (R == kStochastic) uniforms.start(seed, first + static_cast<uint64_t>(b * block_size));
      const __m256 vdown = _mm256_set1_ps(scales.down[j]), vup = _mm256_set1_ps(scales.up[j]);
      for (int64_t k = 0; k < block_size; k += 8) {
        const __m256 u = R == kStochastic ? uniforms.next() : _mm256_setzero_ps();
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(block_in + k), vdown);
        _mm256_storeu_ps(block_out + k, _mm256_mul_ps(avx2::block_element<R, kIsFloat>(v, f, thresholds, u), vup));
      }
    }
  }
}

// Blocks along a strided axis: rows k0..k1 of `columns` (a multiple of 8, <= kColumnChunk) adjacent columns starting
// at in/out, `stride` floats between rows; column maxima on 8 lanes, then each lane scaled by its own column's
// scale. Element (k, c) has index first + (k - k0) * stride + c.
template <int R, bool kIsFloat, int kTables>
__attribute__((target("avx2"))) void run_columns_avx2(const float* in, float* out, int64_t rows, int64_t columns,
                                                       int64_t stride, int emax, const ElementFormat& f,
                                                       const Thresholds& th, uint64_t seed, uint64_t first) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const avx2::RegisterThresholds<kTables> thresholds(th, f.min_exp);
  const avx2::GatherThresholds scale_thresholds(th);
  BlockScales scales[kColumnChunk / 8];
  for (int64_t c = 0; c < columns; c += 8) {
    __m256 amax = _mm256_setzero_ps(), unordered = _mm256_setzero_ps();
    for (int64_t k = 0; k < rows; ++k) {
      const __m256 v = _mm256_loadu_ps(in + k * stride + c);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v, abs_mask));
      unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    alignas(32) float maxima[8];
    _mm256_store_ps(maxima, _mm256_or_ps(amax, unordered));  // NaN (all ones) where a column holds NaN
    shared_scales(maxima, emax, scale_thresholds, scales[c / 8]);
  }
  avx2::Uniforms uniforms;
  for (int64_t k = 0; k < rows; ++k) {
    if constexpr (R == kStochastic) uniforms.start(seed, first + static_cast<uint64_t>(k * stride));
    for (int64_t c = 0; c < columns; c += 8) {
      const BlockScales& s = scales[c / 8];
      const __m256 u = R == kStochastic ? uniforms.next() : _mm256_setzero_ps();
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(in + k * stride + c), _mm256_load_ps(s.down));
      const __m256 y = _mm256_mul_ps(avx2::block_element<R, kIsFloat>(v, f, thresholds, u), _mm256_load_ps(s.up));
      _mm256_storeu_ps(out + k * stride + c,
                       _mm256_blendv_ps(y, _mm256_set1_ps(NAN), _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(s.poisoned)))));
    }
  }
}

const bool kHasAvx2 = __builtin_cpu_supports("avx2");

// Calls body.template operator()<kTables>() with the RegisterThresholds size a block format needs.
template <class Body>
void with_register_tables(const Problem& p, Body&& body) {
  const int binades = p.emax - p.format.min_exp + 2;  // the thresholds that matter (RegisterThresholds)
  if (binades <= 8) return body.template operator()<1>();
  if (binades <= 16) return body.template operator()<2>();
  body.template operator()<4>();
}
#endif

template <int R>
void contiguous(const float* in, float* out, int64_t n, float down, float up, const ElementFormat& f, const Thresholds& th,
                uint64_t seed, uint64_t first) {
  auto body = [&]<int R2, bool F, bool S>() {
#if defined(__x86_64__) && defined(__GNUC__)
    if (kHasAvx2) return run_contiguous_avx2<R2, F, S>(in, out, n, down, up, f, th, seed, first);
#endif
    run_contiguous<R2, F, S>(in, out, n, down, up, f, th, seed, first);
  };
  with_element_kind<R>(f, body);
}

template <int R>
void elementwise(const Problem& p, const Thresholds& th) {
  const int64_t n = p.outer * p.length * p.inner;
  at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    contiguous<R>(p.in + begin, p.out + begin, end - begin, 1.0f, 1.0f, p.format, th, p.seed, static_cast<uint64_t>(begin));
  });
}

// Blocks of contiguous elements (inner == 1): one task = a run of blocks.
template <int R>
void blocked_rows(const Problem& p, const Thresholds& th) {
  const int64_t blocks = (p.length + p.block_size - 1) / p.block_size;
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t whole = p.length / p.block_size;  // blocks of a row without padding
  const bool vector_blocks = kHasAvx2 && p.block_size % 8 == 0;
#endif
  at::parallel_for(0, p.outer * blocks, std::max<int64_t>(1, (1 << 14) / p.block_size), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end;) {
      const int64_t o = task / blocks, b = task % blocks;
      const int64_t k0 = b * p.block_size, n = std::min(p.length - k0, p.block_size);
      const float* in = p.in + o * p.length + k0;
      float* out = p.out + o * p.length + k0;
      const auto first = static_cast<uint64_t>(o * p.length + k0);
#if defined(__x86_64__) && defined(__GNUC__)
      if (vector_blocks && b < whole) {  // a run of whole blocks within this row, on 8 lanes
        const int64_t run = std::min(end - task, whole - b);
        with_register_tables(p, [&]<int kTables>() {
          if (p.format.is_float) return run_blocks_avx2<R, true, kTables>(in, out, run, p.block_size, p.emax, p.format, th, p.seed, first);
          run_blocks_avx2<R, false, kTables>(in, out, run, p.block_size, p.emax, p.format, th, p.seed, first);
        });
        task += run;
        continue;
      }
#endif
      ++task;
      float amax = 0.0f;
      for (int64_t k = 0; k < n; ++k) {
        const float a = std::fabs(in[k]);
        amax = (a > amax || a != a) ? a : amax;  // NaN sticks
      }
      const SharedScale s = shared_scale(amax, p.emax, th);
      if (s.nan) {
        std::fill(out, out + n, NAN);
        continue;
      }
      contiguous<R>(in, out, n, s.down, s.up, p.format, th, p.seed, first);
    }
  });
}

// Blocks along a strided axis, columns c0..c1 of one (outer, block) pair, one column at a time.
template <int R>
void columns_scalar(const Problem& p, const Thresholds& th, int64_t o, int64_t k0, int64_t k1, int64_t c0, int64_t c1) {
  float amax[kColumnChunk];
  SharedScale scale[kColumnChunk];
  const int64_t width = c1 - c0;
  std::fill(amax, amax + width, 0.0f);
  for (int64_t k = k0; k < k1; ++k) {
    const float* row = p.in + (o * p.length + k) * p.inner + c0;
    for (int64_t i = 0; i < width; ++i) {
      const float a = std::fabs(row[i]);
      amax[i] = (a > amax[i] || a != a) ? a : amax[i];  // NaN sticks
    }
  }
  for (int64_t i = 0; i < width; ++i) scale[i] = shared_scale(amax[i], p.emax, th);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t base = (o * p.length + k) * p.inner + c0;
    for (int64_t i = 0; i < width; ++i) {
      if (scale[i].nan) {
        p.out[base + i] = NAN;
      } else {
        contiguous<R>(p.in + base + i, p.out + base + i, 1, scale[i].down, scale[i].up, p.format, th, p.seed,
                      static_cast<uint64_t>(base + i));
      }
    }
  }
}

// Blocks along a strided axis; one task = one (outer, block) pair with all of its `inner` columns, kColumnChunk
// columns at a time (8 per register on AVX2, the last inner % 8 one by one).
template <int R>
void blocked_columns(const Problem& p, const Thresholds& th) {
  const int64_t blocks = (p.length + p.block_size - 1) / p.block_size;
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / (p.block_size * p.inner));
  at::parallel_for(0, p.outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / blocks, b = task % blocks;
      const int64_t k0 = b * p.block_size, k1 = std::min(p.length, k0 + p.block_size);
      for (int64_t c0 = 0; c0 < p.inner; c0 += kColumnChunk) {
        const int64_t c1 = std::min(p.inner, c0 + kColumnChunk);
        int64_t vector_end = c0;
#if defined(__x86_64__) && defined(__GNUC__)
        if (kHasAvx2) {
          vector_end = c0 + (c1 - c0) / 8 * 8;
          const int64_t base = (o * p.length + k0) * p.inner + c0;
          if (vector_end > c0) {
            with_register_tables(p, [&]<int kTables>() {
              auto run = p.format.is_float ? run_columns_avx2<R, true, kTables> : run_columns_avx2<R, false, kTables>;
              run(p.in + base, p.out + base, k1 - k0, vector_end - c0, p.inner, p.emax, p.format, th, p.seed,
                  static_cast<uint64_t>(base));
            });
          }
        }
#endif
        if (vector_end < c1) columns_scalar<R>(p, th, o, k0, k1, vector_end, c1);
      }
    }
  });
}

template <int R>
void run(const Problem& p) {
  if (!p.blocked) {
    elementwise<R>(p, thresholds());
  } else if (p.inner == 1) {
    blocked_rows<R>(p, thresholds());
  } else {
    blocked_columns<R>(p, thresholds());
  }
}

}  // namespace

void quantize_cpu(const Problem& p) {
  switch (p.rounding) {
    case kNearest: return run<kNearest>(p);
    case kEven: return run<kEven>(p);
    case kFloor: return run<kFloor>(p);
    default: return run<kStochastic>(p);
  }
}

}  // namespace assay::mx::detail
