#pragma once
// A float64 reference of ../shared/papers/mx-precision.md, written straight from the spec's formulas, sharing no
// code with the kernels: log2 in double rounded to float32 (the spec's bit-exactness note), the block scaling
// rounded to float32 (where it underflows), everything else in double.
#include <assay/mx.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace assay::mx::reference {

inline double floor_log2_as_float32(double a) { return std::floor(static_cast<float>(std::log2(a))); }

// "All arithmetic in float32": t itself is exact, but |t| + 0.5 is a float32 addition, which rounds when t < 1
// carries more than 24 significant bits (t = 0.5 - 2^-25 gives 1.0). "even" subtracts 1 on exact .5 ties of odd
// floors, the spec's round-half-even written as the reference library computes it.
inline double plus_half_f32(double a) { return static_cast<float>(a) + 0.5f; }

// The stochastic stream as documented in mx.hpp: SplitMix64 of (seed, element index), the top 24 bits as a
// uniform in [0, 1). Element index = position in the row-major tensor.
inline double uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return std::ldexp(static_cast<double>(z >> 40), -24);
}

// u: the element's uniform (stochastic rounding only): floor(|t| + u), the sum rounded to float32 as the spec's
// "all arithmetic in float32" computes it.
inline double round_t(double t, Rounding r, double u = 0) {
  const double sign = t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0), a = std::fabs(t);
  switch (r) {
    case Rounding::stochastic: return sign * std::floor(static_cast<float>(a) + static_cast<float>(u));
    case Rounding::nearest: return sign * std::floor(plus_half_f32(a));
    case Rounding::floor: return sign * std::floor(a);
    case Rounding::even: {
      const bool tie_above_even = a - std::floor(a) == 0.5 && std::fmod(std::floor(a), 2.0) == 0.0;
      return sign * (std::floor(plus_half_f32(a)) - (tie_above_even ? 1.0 : 0.0));
    }
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

// Q(s) for one element.
inline double element(double s, const FormatInfo& f, Rounding r, bool saturate, double u = 0) {
  if (std::isnan(s) || std::isinf(s)) return s;
  double t, e = 0;
  if (f.ebits > 0) {
    e = std::max(floor_log2_as_float32(std::fabs(s) + (s == 0 ? 1.0 : 0.0)), static_cast<double>(f.min_exp));
    t = s / std::exp2(e) * std::exp2(f.mbits - 2);
  } else {
    t = s * std::exp2(f.mbits - 2);
  }
  double y = round_t(t, r, u) / std::exp2(f.mbits - 2) * std::exp2(e);
  if (saturate) {
    y = std::min(std::max(y, -static_cast<double>(f.max_norm)), static_cast<double>(f.max_norm));
  } else if (std::fabs(y) > f.max_norm) {
    y = std::copysign(std::numeric_limits<double>::infinity(), y);
  }
  return y;
}

// A / 2^se as the spec's float32 arithmetic computes it: exact, except that it can underflow (a block whose maximum
// is near 2^127 scales its tiny elements below float32's range: -2^-153 becomes -0, whose sign(t) is 0).
inline double scaled(float a, double se) { return static_cast<float>(a / std::exp2(se)); }

// MX quantization of a row-major tensor viewed as [outer, length, inner], blocks along length.
inline std::vector<float> quantize(const std::vector<float>& x, int64_t outer, int64_t length, int64_t inner,
                                   int64_t block, Format format, Rounding r, uint64_t seed = 0) {
  const auto& f = info(format);
  std::vector<float> out(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k0 = 0; k0 < length; k0 += block) {
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t k) { return (o * length + k) * inner + i; };
        const int64_t k1 = std::min(length, k0 + block);
        double amax = 0;
        bool special = false;
        for (int64_t k = k0; k < k1; ++k) {
          const double v = x[at(k)];
          special |= std::isnan(v) || std::isinf(v);
          amax = std::max(amax, std::fabs(v));
        }
        double se = (amax == 0 ? -126.0 : floor_log2_as_float32(amax)) - f.emax;
        const bool nan_block = special || se > 127;
        se = std::max(se, -127.0);
        for (int64_t k = k0; k < k1; ++k) {
          out[at(k)] = nan_block ? std::numeric_limits<float>::quiet_NaN()
                                 : static_cast<float>(element(scaled(x[at(k)], se), f, r, true,
                                                              uniform(seed, static_cast<uint64_t>(at(k)))) *
                                                      std::exp2(se));
        }
      }
    }
  }
  return out;
}

}  // namespace assay::mx::reference
