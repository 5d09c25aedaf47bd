#pragma once
// The element arithmetic of element.hpp on 8 AVX2 lanes, for the CPU backend's loops (quantize_cpu.cpp, its only
// includer: x86-64 with GCC or Clang, functions compiled for target("avx2") and picked at run time).
#include "element.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace assay::mx::detail {

// quantize_element on 8 lanes with AVX2 (GCC does not vectorize the scalar code: the threshold gather defeats its
// if-conversion). The same float32 operations in the same order as element.hpp, so the lanes are bit-identical to
// the scalar path (the tests compare both against the references).
namespace avx2 {
#define ASSAY_AVX2 __attribute__((target("avx2"), always_inline)) inline
ASSAY_AVX2 __m256 pow2(__m256i k) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23)); }
ASSAY_AVX2 __m256 select(__m256 mask, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, mask); }
// floor of x >= 0: truncation below 2^23, x itself above.
ASSAY_AVX2 __m256 floor_nonnegative(__m256 x) {
  const __m256 truncated = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(x));
  return select(_mm256_cmp_ps(x, _mm256_set1_ps(8388608.0f), _CMP_LT_OQ), truncated, x);
}

// Thresholds answer "does log2 round up to the next binade": a mask per lane from its binade (unbiased exponent)
// and 23-bit fraction.
//
// From the whole table, for elementwise rounding (any binade). Every threshold lies in the top 4096 fractions of its
// binade (formats.cpp), so a vector whose fractions are all below the smallest threshold needs no gather (almost
// every vector: the gather is the slow part).
struct GatherThresholds {
  const Thresholds& th;
  __m256i smallest_minus_one;
  __attribute__((target("avx2"))) explicit GatherThresholds(const Thresholds& table) : th(table) {
    static const uint32_t smallest = *std::min_element(table.fraction, table.fraction + kThresholdCount);  // one table
    smallest_minus_one = _mm256_set1_epi32(static_cast<int>(smallest) - 1);
  }
  ASSAY_AVX2 __m256i up(__m256i unbiased, __m256i fraction) const {
    if (_mm256_testz_si256(_mm256_cmpgt_epi32(fraction, smallest_minus_one), _mm256_set1_epi32(-1))) return _mm256_setzero_si256();
    const __m256i index = _mm256_min_epi32(_mm256_add_epi32(unbiased, _mm256_set1_epi32(149)), _mm256_set1_epi32(kThresholdCount - 1));
    const __m256i threshold = _mm256_i32gather_epi32(reinterpret_cast<const int*>(th.fraction), index, 4);
    return _mm256_cmpgt_epi32(fraction, _mm256_sub_epi32(threshold, _mm256_set1_epi32(1)));  // >=
  }
};

// The same from registers, for block-scaled formats: a scaled element's binade lies in [min_exp - 1, emax] where
// the threshold can matter (below, max(e, min_exp) gives min_exp whatever the rounding; above, no scaled value
// reaches), at most 32 binades (fp8_e5m2: 31): kTables 8-entry tables and permutes instead of a gather.
template <int kTables>
struct RegisterThresholds {
  __m256i table[kTables];
  __m256i smallest_minus_one;
  int first;  // the unbiased exponent of table entry 0
  __attribute__((target("avx2"))) RegisterThresholds(const Thresholds& th, int min_exp) : first(min_exp - 1) {
    alignas(32) uint32_t entries[8 * kTables];
    for (int i = 0; i < 8 * kTables; ++i) entries[i] = th.fraction[std::min(first + i + 149, kThresholdCount - 1)];
    for (int t = 0; t < kTables; ++t) table[t] = load(entries + 8 * t);
    smallest_minus_one = _mm256_set1_epi32(static_cast<int>(*std::min_element(entries, entries + 8 * kTables)) - 1);
  }
  static __attribute__((target("avx2"))) __m256i load(const uint32_t* p) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
  }
  // As in GatherThresholds, vectors whose fractions are all below the smallest threshold skip the lookup.
  ASSAY_AVX2 __m256i up(__m256i unbiased, __m256i fraction) const {
    if (_mm256_testz_si256(_mm256_cmpgt_epi32(fraction, smallest_minus_one), _mm256_set1_epi32(-1))) return _mm256_setzero_si256();
    return _mm256_cmpgt_epi32(fraction, _mm256_sub_epi32(lookup(unbiased), _mm256_set1_epi32(1)));  // >=
  }
  // permutevar8x32 reads the low 3 bits of each index, so every table is indexed by the same vector.
  ASSAY_AVX2 __m256i lookup(__m256i unbiased) const {
    const __m256i index = _mm256_max_epi32(_mm256_sub_epi32(unbiased, _mm256_set1_epi32(first)), _mm256_setzero_si256());
    __m256i out = _mm256_permutevar8x32_epi32(table[0], index);
    if constexpr (kTables >= 2) {
      out = _mm256_blendv_epi8(out, _mm256_permutevar8x32_epi32(table[1], index), _mm256_cmpgt_epi32(index, _mm256_set1_epi32(7)));
    }
    if constexpr (kTables == 4) {
      const __m256i high = _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(table[2], index),
                                              _mm256_permutevar8x32_epi32(table[3], index),
                                              _mm256_cmpgt_epi32(index, _mm256_set1_epi32(23)));
      out = _mm256_blendv_epi8(out, high, _mm256_cmpgt_epi32(index, _mm256_set1_epi32(15)));
    }
    return out;
  }
};

// uniform() of 8 consecutive element indices: SplitMix64 on 4 x 64-bit lanes per register. AVX2 has no 64-bit
// multiply, so each is three 32 x 32 -> 64-bit products; the counters step by 8 * kGolden (stream_counter).
ASSAY_AVX2 __m256i mul64(__m256i a, uint64_t c) {
  const __m256i low = _mm256_set1_epi64x(static_cast<int64_t>(c & 0xffffffffu));
  const __m256i high = _mm256_set1_epi64x(static_cast<int64_t>(c >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), low), _mm256_mul_epu32(a, high));
  return _mm256_add_epi64(_mm256_mul_epu32(a, low), _mm256_slli_epi64(cross, 32));
}
ASSAY_AVX2 __m256i top24(__m256i z) {  // uniform_at's integer: the top 24 bits of the mixed counter
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBull);
  return _mm256_srli_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 31)), 40);
}
struct Uniforms {
  __m256i low{}, high{};  // the counters of lanes 0-3 and 4-7
  ASSAY_AVX2 void start(uint64_t seed, uint64_t first) {
    const uint64_t z = stream_counter(seed, first);
    low = _mm256_set_epi64x(static_cast<int64_t>(z + 3 * kGolden), static_cast<int64_t>(z + 2 * kGolden),
                            static_cast<int64_t>(z + kGolden), static_cast<int64_t>(z));
    high = _mm256_add_epi64(low, _mm256_set1_epi64x(static_cast<int64_t>(4 * kGolden)));
  }
  ASSAY_AVX2 __m256 next() {
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);  // each 64-bit lane's low half
    const __m256i bits = _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(top24(low), even),
                                                   _mm256_permutevar8x32_epi32(top24(high), even), 0x20);
    const __m256i step = _mm256_set1_epi64x(static_cast<int64_t>(8 * kGolden));
    low = _mm256_add_epi64(low, step);
    high = _mm256_add_epi64(high, step);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(bits), _mm256_set1_ps(5.9604644775390625e-8f));  // 2^-24
  }
};

// quantize_element for a lane of a block-scaled format (saturating; no Inf/NaN: such blocks are all-NaN before
// this), with the same float32 results and fewer operations than element(): the magnitude is rounded and the
// sign put back (the spec's sign(t) * r: negative t gives -r, even -0; t = +-0 gives +0); the two power-of-two
// scalings on each side are one (exact either way: every factor and product is in the normal range for MX
// formats); |t| < 2^mbits, so truncation is floor without the 2^23 test; zeros and subnormals need no -127 case
// (their exponent is below min_exp whatever the threshold says).
template <int R, bool kIsFloat, class Lookup>
ASSAY_AVX2 __m256 block_element(__m256 s, const ElementFormat& f, const Lookup& thresholds, __m256 u) {
  const __m256 a = _mm256_and_ps(s, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  __m256 t, back;
  if constexpr (kIsFloat) {
    const __m256i bits = _mm256_castps_si256(a);
    const __m256i unbiased = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
    const __m256i fraction = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
    const __m256i e = _mm256_max_epi32(_mm256_sub_epi32(unbiased, thresholds.up(unbiased, fraction)), _mm256_set1_epi32(f.min_exp));
    t = _mm256_mul_ps(a, pow2(_mm256_sub_epi32(_mm256_set1_epi32(f.mbits - 2), e)));
    back = pow2(_mm256_add_epi32(_mm256_set1_epi32(2 - f.mbits), e));
  } else {
    t = _mm256_mul_ps(a, _mm256_set1_ps(pow2_normal(f.mbits - 2)));
    back = _mm256_set1_ps(pow2_normal(2 - f.mbits));
  }
  __m256 r;
  if constexpr (R == kNearest) {
    r = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_set1_ps(0.5f))));
  } else if constexpr (R == kEven) {
    const __m256 d = _mm256_sub_ps(t, _mm256_set1_ps(0.5f));
    const __m256i di = _mm256_cvttps_epi32(d);
    const __m256 integral = _mm256_cmp_ps(_mm256_cvtepi32_ps(di), d, _CMP_EQ_OQ);
    const __m256 even = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(di, _mm256_set1_epi32(1)), _mm256_setzero_si256()));
    const __m256 tie = _mm256_and_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GE_OQ), _mm256_and_ps(integral, even));
    r = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_set1_ps(0.5f)))),
                      _mm256_and_ps(tie, _mm256_set1_ps(1.0f)));
  } else if constexpr (R == kStochastic) {
    r = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(t, u)));
  } else {
    r = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(t));
  }
  const __m256 y = _mm256_min_ps(_mm256_mul_ps(r, back), _mm256_set1_ps(f.max_norm));
  const __m256 negative = _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_or_ps(y, _mm256_and_ps(negative, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)))));
}

template <int R, bool kIsFloat, bool kSaturate, class Lookup>
ASSAY_AVX2 __m256 element(__m256 s, const ElementFormat& f, const Lookup& thresholds, __m256 u) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 a = _mm256_and_ps(s, abs_mask);
  __m256i e = _mm256_setzero_si256();
  __m256 t;
  if constexpr (kIsFloat) {
    const __m256i bits = _mm256_castps_si256(a);
    const __m256i field = _mm256_srli_epi32(bits, 23);
    const __m256i unbiased = _mm256_sub_epi32(field, _mm256_set1_epi32(127));
    const __m256i fraction = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
    const __m256i rounded = _mm256_sub_epi32(unbiased, thresholds.up(unbiased, fraction));  // + 1 where up
    e = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(-127), _mm256_cmpeq_epi32(field, _mm256_setzero_si256()));
    e = _mm256_max_epi32(e, _mm256_set1_epi32(f.min_exp));
    t = _mm256_mul_ps(_mm256_mul_ps(s, pow2(_mm256_sub_epi32(_mm256_set1_epi32(1), e))), _mm256_set1_ps(pow2_normal(f.mbits - 3)));
  } else {
    t = _mm256_mul_ps(s, _mm256_set1_ps(pow2_normal(f.mbits - 2)));
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256 sign = _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(t, zero, _CMP_GT_OQ), _mm256_set1_ps(1.0f)),
                                   _mm256_and_ps(_mm256_cmp_ps(t, zero, _CMP_LT_OQ), _mm256_set1_ps(-1.0f)));
  const __m256 at = _mm256_and_ps(t, abs_mask);
  __m256 r;
  if constexpr (R == kNearest) {
    r = floor_nonnegative(_mm256_add_ps(at, _mm256_set1_ps(0.5f)));
  } else if constexpr (R == kEven) {
    const __m256 d = _mm256_sub_ps(at, _mm256_set1_ps(0.5f));
    const __m256i di = _mm256_cvttps_epi32(d);
    const __m256 integral = _mm256_cmp_ps(_mm256_cvtepi32_ps(di), d, _CMP_EQ_OQ);
    const __m256 even = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(di, _mm256_set1_epi32(1)), _mm256_setzero_si256()));
    const __m256 big = _mm256_cmp_ps(d, _mm256_set1_ps(16777216.0f), _CMP_GE_OQ);
    const __m256 tie = _mm256_and_ps(_mm256_cmp_ps(d, zero, _CMP_GE_OQ), _mm256_or_ps(big, _mm256_and_ps(integral, even)));
    r = _mm256_sub_ps(floor_nonnegative(_mm256_add_ps(at, _mm256_set1_ps(0.5f))), _mm256_and_ps(tie, _mm256_set1_ps(1.0f)));
  } else if constexpr (R == kStochastic) {
    r = floor_nonnegative(_mm256_add_ps(at, u));
  } else {
    r = floor_nonnegative(at);
  }
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(sign, r), _mm256_set1_ps(pow2_normal(2 - f.mbits)));
  if constexpr (kIsFloat) y = _mm256_mul_ps(y, pow2(e));
  const __m256 max_norm = _mm256_set1_ps(f.max_norm);
  if constexpr (kSaturate) {
    const __m256 neg_max = _mm256_set1_ps(-f.max_norm);
    y = select(_mm256_cmp_ps(y, max_norm, _CMP_GT_OQ), max_norm, select(_mm256_cmp_ps(y, neg_max, _CMP_LT_OQ), neg_max, y));
  } else {
    const __m256 inf = select(_mm256_cmp_ps(y, zero, _CMP_GT_OQ), _mm256_set1_ps(INFINITY), _mm256_set1_ps(-INFINITY));
    y = select(_mm256_cmp_ps(_mm256_and_ps(y, abs_mask), max_norm, _CMP_GT_OQ), inf, y);
  }
  return select(_mm256_cmp_ps(a, _mm256_set1_ps(3.402823466e38f), _CMP_LE_OQ), y, s);  // Inf and NaN pass through
}
// quantize_element for bf16 with nearest or even rounding, as integer operations on the float32 bits: the spec's
// t = |s| 2^(7-e) lies in [1, 256) with at most 16 fraction bits for every finite s (normal or subnormal), so
// floor(t + 0.5) is exact and rounding t is rounding the bits below bit 16 (ties away: + 0x8000; ties to even:
// + 0x7fff + bit 16), a carry moving into the next binade (the log2 threshold case, up to Inf) as it does in the
// spec; the sign is put back except on zeros (sign(+-0) = 0: -0 comes out +0); Inf and NaN pass through.
template <int R>
ASSAY_AVX2 __m256 bf16_element(__m256 s) {
  const __m256i bits = _mm256_castps_si256(s);
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
  __m256i increment = _mm256_set1_epi32(0x8000);
  if constexpr (R == kEven) {
    increment = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(magnitude, 16), _mm256_set1_epi32(1)));
  }
  const __m256i rounded = _mm256_and_si256(_mm256_add_epi32(magnitude, increment), _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  const __m256i zero = _mm256_cmpeq_epi32(magnitude, _mm256_setzero_si256());
  const __m256i sign = _mm256_andnot_si256(zero, _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0x80000000u))));
  const __m256i finite = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f800000), magnitude);
  return _mm256_castsi256_ps(_mm256_blendv_epi8(bits, _mm256_or_si256(rounded, sign), finite));
}
#undef ASSAY_AVX2
}  // namespace avx2

}  // namespace assay::mx::detail
