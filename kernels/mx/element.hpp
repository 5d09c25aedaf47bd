#pragma once
// The per-element arithmetic of MX quantization, compiled both for the CPU and by nvcc for CUDA so that the two
// backends execute the same float32 operations in the same order (bit-identical results). Every step mirrors the
// spec (../shared/papers/mx-precision.md): scaling by powers of two is exact, so only the rounding of t matters.
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define ASSAY_HD __host__ __device__ __forceinline__
#else
// always_inline: the AVX2 loops (target("avx2")) would otherwise call these as baseline-SSE functions, and the
// switch between AVX and legacy-SSE code stalls (measured: a third of the stochastic kernel's time in shared_scale).
#define ASSAY_HD inline __attribute__((always_inline))
#endif

namespace assay::mx::detail {

enum RoundingCode : int { kNearest = 0, kEven = 1, kFloor = 2, kStochastic = 3 };

// Smallest 23-bit fraction at which float32 log2 rounds up to e + 1, per exact binary exponent e in [-149, 127]
// (index e + 149); 0x800000 = never. Built on the host (mx.cpp) and passed to kernels by value.
constexpr int kThresholdCount = 277;
struct Thresholds {
  uint32_t fraction[kThresholdCount];
};

// What quantize_element needs of a format.
struct ElementFormat {
  int mbits;        // incl. sign and implicit one
  int min_exp;      // smallest normal exponent
  float max_norm;
  bool is_float;    // ebits > 0
  bool saturate;    // clamp to +-max_norm (MX elements, integers); else overflow -> +-Inf
};

ASSAY_HD uint32_t float_bits(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}
ASSAY_HD float bits_float(uint32_t b) {
  float x;
  memcpy(&x, &b, sizeof x);
  return x;
}
// 2^k exactly as a float32 for k in [-149, 127] (subnormal powers included).
ASSAY_HD float pow2(int k) {
  return k >= -126 ? bits_float(static_cast<uint32_t>(k + 127) << 23) : bits_float(1u << (k + 149));
}

// floor(log2(a)) as float32 rounds log2 (see mx.hpp), for finite a > 0.
ASSAY_HD int floor_log2(float a, const Thresholds& t) {
  const uint32_t b = float_bits(a);
  int e = static_cast<int>((b >> 23) & 0xff);
  uint32_t fraction = b & 0x7fffff;
  if (e == 0) {  // subnormal: normalize the fraction
    int top = 31;
    while (!(fraction >> top)) --top;  // position of the leading one, < 23
    e = top - 149;
    fraction = (fraction << (23 - top)) & 0x7fffff;
  } else {
    e -= 127;
  }
  return e + (fraction >= t.fraction[e + 149] ? 1 : 0);
}

// Counter-based uniform in [0, 1) with 24 bits: SplitMix64 of (seed, index), in two halves so that a loop over
// consecutive indices can step the counter by adding kGolden instead of multiplying (same bits).
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
ASSAY_HD uint64_t stream_counter(uint64_t seed, uint64_t index) { return seed + (index + 1) * kGolden; }
ASSAY_HD float uniform_at(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * 5.9604644775390625e-8f;  // 2^-24
}
ASSAY_HD float uniform(uint64_t seed, uint64_t index) { return uniform_at(stream_counter(seed, index)); }

// floor(a) for a >= 0, exact, without a libm call (baseline x86-64 has no floor instruction): floats >= 2^23 are
// integers already, below that truncation is floor.
ASSAY_HD float floor_nonnegative(float a) { return a < 8388608.0f ? static_cast<float>(static_cast<int32_t>(a)) : a; }

// Whether d >= 0 is an even integer (floats >= 2^24 all are).
ASSAY_HD bool even_integer(float d) {
  if (d >= 16777216.0f) return true;
  const auto i = static_cast<int32_t>(d);
  return static_cast<float>(i) == d && (i & 1) == 0;
}

// torch.sign: +1, -1, or 0 for +-0.
ASSAY_HD float sign_of(float t) { return t > 0.0f ? 1.0f : (t < 0.0f ? -1.0f : 0.0f); }

template <int R>
ASSAY_HD float round_mantissa(float t, float u) {
  const float a = fabsf(t);
  if constexpr (R == kNearest) {
    return sign_of(t) * floor_nonnegative(a + 0.5f);
  } else if constexpr (R == kEven) {
    // sign * (floor(|t| + 0.5) - [|t| - 0.5 is an even integer]), as the reference writes round-half-even
    const float d = a - 0.5f;
    const float tie = (d >= 0.0f && even_integer(d)) ? 1.0f : 0.0f;
    return sign_of(t) * (floor_nonnegative(a + 0.5f) - tie);
  } else if constexpr (R == kFloor) {
    return sign_of(t) * floor_nonnegative(a);
  } else {
    return sign_of(t) * floor_nonnegative(a + u);
  }
}

// 2^k for k in [-126, 127] (normal powers only), branch-free.
ASSAY_HD float pow2_normal(int k) { return bits_float(static_cast<uint32_t>(k + 127) << 23); }

// floor_log2 for the element path, branch-free: zeros and subnormals give -127 (every format's min_exp is larger,
// so they all take min_exp, as the spec's max(e, min_exp) does); Inf/NaN give a value that is never used.
ASSAY_HD int floor_log2_element(float a, const Thresholds& t) {
  const uint32_t b = float_bits(a);
  const int field = static_cast<int>((b >> 23) & 0xff);
  const int e = field - 127;
  const int index = e + 149 < kThresholdCount ? e + 149 : kThresholdCount - 1;
  const int rounded = e + ((b & 0x7fffff) >= t.fraction[index] ? 1 : 0);
  return field == 0 ? -127 : rounded;
}

// Q(s): the element rounding of the spec, all arithmetic in float32, written without branches so that the CPU loops
// vectorize. Scalings by powers of two are exact; they are split so that no factor leaves the normal range
// (t = s * 2^-(e-1) * 2^(mbits-3), the same real value as the spec's s / 2^e * 2^(mbits-2)).
template <int R, bool kIsFloat, bool kSaturate>
ASSAY_HD float quantize_element(float s, const ElementFormat& f, const Thresholds& th, float u) {
  float t;
  int e = 0;
  if constexpr (kIsFloat) {
    e = floor_log2_element(fabsf(s), th);
    e = e < f.min_exp ? f.min_exp : e;
    t = s * pow2_normal(1 - e) * pow2_normal(f.mbits - 3);
  } else {
    t = s * pow2_normal(f.mbits - 2);
  }
  float y = round_mantissa<R>(t, u) * pow2_normal(2 - f.mbits);
  if constexpr (kIsFloat) y = y * pow2_normal(e);
  if constexpr (kSaturate) {
    y = y > f.max_norm ? f.max_norm : (y < -f.max_norm ? -f.max_norm : y);  // keeps -0
  } else {
    y = fabsf(y) > f.max_norm ? (y > 0.0f ? INFINITY : -INFINITY) : y;
  }
  return fabsf(s) <= 3.402823466e38f ? y : s;  // Inf and NaN pass through
}

// Calls quantize_element with the format's kind as template arguments (hoisted out of loops by the callers).
template <int R, class Body>
ASSAY_HD void with_element_kind(const ElementFormat& f, Body&& body) {
  if (f.is_float) {
    if (f.saturate) body.template operator()<R, true, true>();
    else body.template operator()<R, true, false>();
  } else {
    body.template operator()<R, false, true>();
  }
}

// The block's shared exponent from its largest magnitude (NaN when the block holds Inf/NaN or se > 127).
struct SharedScale {
  float down;   // 2^-se
  float up;     // 2^se
  bool nan;
};
ASSAY_HD SharedScale shared_scale(float amax, int emax, const Thresholds& th) {
  if (!(amax <= 3.402823466e38f)) return {0.0f, 0.0f, true};
  int se = (amax == 0.0f ? -126 : floor_log2(amax, th)) - emax;
  if (se > 127) return {0.0f, 0.0f, true};
  if (se < -127) se = -127;
  return {pow2(-se), pow2(se), false};
}

}  // namespace assay::mx::detail
