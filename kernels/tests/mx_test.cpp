// MX quantization on the CPU: hand-derived edge cases per format, a property test against the float64 reference
// of the spec (mx_reference.hpp), torch's own bf16/fp16 casts, float32 log2, and exact packing round trips.
#include "mx_reference.hpp"

#include <assay/mx.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "test_support.hpp"

namespace {

using assay::mx::Format;
using assay::mx::Rounding;
namespace mx = assay::mx;

at::Tensor row(std::vector<float> values) { return torch::tensor(values, torch::kFloat); }
std::vector<float> values(const at::Tensor& t) {
  auto c = t.contiguous().cpu();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}
at::Tensor q(std::vector<float> x, Format f, Rounding r = Rounding::nearest) {
  return mx::quantize(row(std::move(x)), {.format = f, .rounding = r});
}
uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
// Bitwise equality, every NaN equal to every NaN (and -0 == +0 if asked).
bool same_bits(const at::Tensor& a, const at::Tensor& b, bool ignore_zero_sign = false) {
  auto x = values(a), y = values(b);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    if (bits(x[i]) != bits(y[i]) && !(ignore_zero_sign && x[i] == 0 && y[i] == 0)) return false;
  }
  return true;
}

TEST(Mx, FormatTableMatchesTheSpecsGeneralRule) {
  // max_norm = 2^emax * (2^(mbits-1) - 1) / 2^(mbits-2) for every float format but e4m3 (1.75 * 2^8).
  for (auto f : {Format::fp8_e5m2, Format::fp6_e3m2, Format::fp6_e2m3, Format::fp4_e2m1, Format::fp16, Format::bf16}) {
    const auto& i = mx::info(f);
    EXPECT_FLOAT_EQ(i.max_norm, std::ldexp((std::ldexp(1.0, i.mbits - 1) - 1) / std::ldexp(1.0, i.mbits - 2), i.emax)) << i.name;
    EXPECT_EQ(i.min_exp, 2 - (1 << (i.ebits - 1))) << i.name;
  }
  EXPECT_EQ(mx::info(Format::fp8_e4m3).max_norm, 448.0f);
  EXPECT_EQ(mx::format_from_name("fp6_e2m3"), Format::fp6_e2m3);
  EXPECT_THROW(mx::format_from_name("mxfp8"), std::invalid_argument);
  EXPECT_THROW(mx::rounding_from_name("up"), std::invalid_argument);
}

TEST(Mx, ZerosAndSignedZero) {
  for (auto f : {Format::fp8_e4m3, Format::fp4_e2m1, Format::int8}) {
    EXPECT_TRUE(same_bits(q({0, 0, 0}, f), row({0, 0, 0})));
    // sign(-0) = 0 in the reference arithmetic: -0 comes out +0; a negative value rounding to zero keeps its sign.
    auto y = values(q({-0.0f, 1.0f, -1e-6f}, f));
    EXPECT_EQ(bits(y[0]), 0u);
    EXPECT_EQ(bits(y[2]), 0x80000000u);
  }
}

TEST(Mx, SubnormalFloat32BlockAndExactTies) {
  // amax = 17 * 2^-137: floor(log2) = -133, se = -141 -> clamped to -127; s = 17 * 2^-10 (e = -6 after the clamp
  // at min_exp) gives t = 8.5: ties away -> 9, even -> 8, floor -> 8; y = t * 2^-3 * 2^-6 * 2^-127.
  const float x = std::ldexp(17.0f, -137);
  EXPECT_EQ(values(q({x}, Format::fp8_e4m3, Rounding::nearest))[0], std::ldexp(9.0f, -136));
  EXPECT_EQ(values(q({x}, Format::fp8_e4m3, Rounding::even))[0], std::ldexp(8.0f, -136));
  EXPECT_EQ(values(q({x}, Format::fp8_e4m3, Rounding::floor))[0], std::ldexp(8.0f, -136));
  // Block max 256 -> se = 0; 1.0625 -> t = 8.5 and 1.1875 -> t = 9.5 (e4m3 keeps 3 mantissa bits).
  const std::vector<float> block = {256, 1.0625f, 1.1875f, -1.0625f};
  EXPECT_EQ(values(q(block, Format::fp8_e4m3, Rounding::nearest)), (std::vector<float>{256, 1.125f, 1.25f, -1.125f}));
  EXPECT_EQ(values(q(block, Format::fp8_e4m3, Rounding::even)), (std::vector<float>{256, 1.0f, 1.25f, -1.0f}));
  EXPECT_EQ(values(q(block, Format::fp8_e4m3, Rounding::floor)), (std::vector<float>{256, 1.0f, 1.125f, -1.0f}));
}

TEST(Mx, OutlierFlushesItsBlockOnly) {
  // fp4 e2m1: amax 1000 -> se = 9 - 2 = 7; 1000 / 128 = 7.8125 -> e = 2, t = 3.9 -> 4 -> 8 -> saturates at 6 -> 768;
  // 1 / 128 has t = 0.0156 -> 0. The next block (elements 32..) keeps its own scale.
  std::vector<float> x(64, 1.0f);
  x[0] = 1000;
  auto y = values(q(x, Format::fp4_e2m1));
  EXPECT_EQ(y[0], 768.0f);
  for (int i = 1; i < 32; ++i) EXPECT_EQ(y[i], 0.0f) << i;
  for (int i = 32; i < 64; ++i) EXPECT_EQ(y[i], 1.0f) << i;
}

TEST(Mx, OneUlpBelowAPowerOfTwoUsesFloat32Log2) {
  // log2(8 - 2^-21) rounds to 3 in float32 (true floor: 2): se = 3 - 8, s = 256 - 2^-16, whose log2 rounds to 8:
  // t = 8 - 2^-21 -> 8 -> 256 -> 8.0. With an exact floor(log2) the block would use se = -6 and clip to 7.0.
  const float x = std::nextafter(8.0f, 0.0f);
  EXPECT_EQ(mx::floor_log2(x), 3);
  EXPECT_EQ(values(q({x}, Format::fp8_e4m3))[0], 8.0f);
  EXPECT_EQ(mx::floor_log2(std::nextafter(2.0f, 0.0f)), 0);  // here float32 log2 is below 1
}

TEST(Mx, FloorLog2MatchesTorchLog2AtEveryThreshold) {
  // For every binary exponent, the few hundred fractions below the next power of two (where float32 log2 may round
  // up) and a sample elsewhere, including subnormals.
  std::vector<float> xs;
  for (int e = -149; e <= 127; ++e) {
    for (int back = 1; back <= 300; ++back) {
      const float p = e >= -126 ? std::ldexp(1.0f, e + 1) : std::ldexp(1.0f, e + 1);
      float x = p;
      for (int i = 0; i < back; ++i) x = std::nextafter(x, 0.0f);
      if (x > 0 && std::isfinite(x)) xs.push_back(x);
    }
    xs.push_back(std::ldexp(1.5f, e));
  }
  auto expected = torch::log2(row(xs)).floor();
  auto e = values(expected);
  int mismatches = 0;
  for (size_t i = 0; i < xs.size(); ++i) mismatches += mx::floor_log2(xs[i]) != static_cast<int>(e[i]);
  EXPECT_EQ(mismatches, 0) << "of " << xs.size();
}

TEST(Mx, SaturationAndMantissaClipping) {
  EXPECT_EQ(values(q({500}, Format::fp8_e4m3))[0], 448.0f);  // t = 15.6 -> 16 -> 512 -> 448
  EXPECT_EQ(values(q({480}, Format::fp8_e4m3))[0], 448.0f);  // mantissa 1.875 > 1.75: clipped
  EXPECT_EQ(values(q({1.999f}, Format::int8))[0], 127.0f / 64);
  EXPECT_EQ(values(q({1.0f, 0.3f}, Format::int8)), (std::vector<float>{1.0f, 19.0f / 64}));
  EXPECT_EQ(values(q({-7.9f}, Format::int4))[0], -7.0f);  // se = 2: -1.975 * 4 = -7.9 -> -8 -> clamp -1.75 -> -7
}

TEST(Mx, NanAndInfPoisonTheirBlock) {
  std::vector<float> x(64, 1.0f);
  x[3] = NAN;
  x[40] = INFINITY;
  auto y = values(q(x, Format::fp8_e5m2));
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;
  x[40] = 2.0f;
  y = values(q(x, Format::fp8_e5m2));
  for (int i = 32; i < 64; ++i) EXPECT_FALSE(std::isnan(y[i])) << i;
  // Elementwise formats: Inf and NaN pass through, overflow becomes Inf.
  auto z = values(mx::round_elementwise(row({INFINITY, -INFINITY, NAN, 70000.0f}), Format::fp16));
  EXPECT_EQ(z[0], INFINITY);
  EXPECT_EQ(z[1], -INFINITY);
  EXPECT_TRUE(std::isnan(z[2]));
  EXPECT_EQ(z[3], INFINITY);
}

TEST(Mx, AxisZeroWithPadding) {
  // [33, 2], blocks along axis 0: rows 0..31 share a scale per column, row 32 is a tail block of one.
  auto x = torch::ones({33, 2});
  x[0][0] = 1000;  // flushes column 0's first block (fp4 as above) but not column 1 or the tail
  auto y = mx::quantize(x, {.format = Format::fp4_e2m1, .axis = 0});
  EXPECT_EQ(y[0][0].item<float>(), 768.0f);
  EXPECT_EQ(y[5][0].item<float>(), 0.0f);
  EXPECT_EQ(y[5][1].item<float>(), 1.0f);
  EXPECT_EQ(y[32][0].item<float>(), 1.0f);
  EXPECT_TRUE(same_bits(mx::quantize(x, {.format = Format::fp4_e2m1, .axis = 0}),
                        mx::quantize(x.t().contiguous(), {.format = Format::fp4_e2m1, .axis = 1}).t()));
}

// Inputs spanning many binades, with zeros, exact powers of two, values just below them, subnormals and ties.
at::Tensor hostile(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> x(n);
  for (auto& v : x) {
    const float kind = u(rng);
    const float sign = u(rng) < 0.5f ? -1.0f : 1.0f;
    const int e = static_cast<int>(u(rng) * 60) - 30;
    if (kind < 0.05f) v = 0;
    else if (kind < 0.15f) v = sign * std::ldexp(1.0f, e);
    else if (kind < 0.25f) v = sign * std::nextafter(std::ldexp(1.0f, e), 0.0f);
    else if (kind < 0.3f) v = sign * std::ldexp(1.0f + u(rng), -140);
    else if (kind < 0.4f) v = sign * std::ldexp(static_cast<float>(static_cast<int>(u(rng) * 64)) + 0.5f, e - 6);
    else v = sign * std::ldexp(1.0f + u(rng), static_cast<int>(u(rng) * 8) - 4) * (u(rng) < 0.02f ? 1e4f : 1.0f);
  }
  return row(x);
}

TEST(Mx, MatchesTheFloat64ReferenceOfTheSpec) {
  int checked = 0;
  for (int fi = 0; fi <= static_cast<int>(Format::int4); ++fi) {
    const auto f = static_cast<Format>(fi);
    for (auto r : {Rounding::nearest, Rounding::even, Rounding::floor}) {
      for (int64_t axis : {0, 1, 2}) {
        for (int64_t block : {32, 8}) {
          auto x = hostile(3 * 37 * 5, 1000 * fi + 10 * static_cast<int>(r) + axis).view({3, 37, 5});
          const auto y = values(mx::quantize(x, {.format = f, .axis = axis, .block_size = block, .rounding = r}));
          // the reference blocks along the last axis of a [outer, length, inner] view
          auto moved = x.movedim(axis, 1).contiguous();
          const int64_t outer = moved.size(0), length = moved.size(1), inner = moved.numel() / (outer * length);
          auto ref = torch::tensor(mx::reference::quantize(values(moved), outer, length, inner, block, f, r))
                         .view(moved.sizes()).movedim(1, axis).contiguous();
          auto expected = values(ref);
          for (size_t i = 0; i < y.size(); ++i) {
            const bool ok = (std::isnan(y[i]) && std::isnan(expected[i])) || y[i] == expected[i];
            ASSERT_TRUE(ok) << mx::info(f).name << " " << mx::rounding_name(r) << " axis " << axis << " block " << block
                            << " element " << i << ": got " << y[i] << " expected " << expected[i] << " input "
                            << values(x.reshape({-1}))[i];
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 60000);
}

TEST(Mx, BitIdenticalToThePyTorchOpChain) {
  // mx_torch.py writes the spec as float32 torch ops (the way the reference library's pure-PyTorch path computes);
  // every format, deterministic rounding and axis must agree bit for bit (any NaN equal to any NaN).
  c10::Dict<std::string, at::Tensor> data;
  auto x = hostile(6 * 45 * 4, 42).view({6, 45, 4});
  x[2][7][1] = NAN;
  data.insert("x", x);
  for (const auto& name : mx::format_names()) {
    for (auto r : {Rounding::nearest, Rounding::even, Rounding::floor}) {
      for (int64_t axis : {0, 1, 2}) {
        data.insert(name + "/" + std::string(mx::rounding_name(r)) + "/" + std::to_string(axis),
                    mx::quantize(x, {.format = mx::format_from_name(name), .axis = axis, .rounding = r}));
      }
    }
  }
  const auto file = (assay::testing::temp_dir("mx-torch") / "data.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(data));
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::string out;
  EXPECT_EQ(assay::testing::shell("python3 -B " ASSAY_SOURCE_DIR "/kernels/tests/mx_torch.py check " + file, &out), 0) << out;
  EXPECT_NE(out.find(std::to_string(data.size() - 1) + " 0"), std::string::npos) << out;
}

TEST(Mx, ElementwiseBf16AndFp16MatchTorchCasts) {
  // Round-half-even emulation == torch's own float32 -> bf16/fp16 conversion (IEEE round to nearest even), with
  // overflow to Inf, for every value whose scaled mantissa t is >= 1. Below that (deep in the subnormal range) the
  // spec's float32 |t| + 0.5 can itself round (t = 0.5 - 2^-25 gives 1 - 2^-25 -> 1.0), so the emulation may be
  // one quantum (the smallest subnormal) away from IEEE there, never more. +-0 compare equal.
  auto x = hostile(20000, 7) * torch::exp2(torch::randint(-8, 8, {20000}).to(torch::kFloat));
  for (auto [f, dtype, quantum] : {std::tuple{Format::bf16, torch::kBFloat16, std::ldexp(1.0, -133)},
                                   std::tuple{Format::fp16, torch::kHalf, std::ldexp(1.0, -24)}}) {
    auto ours = mx::round_elementwise(x, f, Rounding::even);
    auto torch_cast = x.to(dtype).to(torch::kFloat);
    auto normal = x.abs() >= quantum;
    EXPECT_TRUE(torch::equal(ours.masked_select(normal), torch_cast.masked_select(normal)))
        << mx::info(f).name << ": " << (ours != torch_cast).logical_and(normal).sum().item<int64_t>() << " differ";
    EXPECT_TRUE(torch::equal(ours.isinf(), torch_cast.isinf())) << mx::info(f).name;
    auto finite = torch_cast.isfinite();
    EXPECT_LE((ours - torch_cast).masked_select(finite).abs().max().item<double>(), quantum) << mx::info(f).name;
  }
}

TEST(Mx, StochasticRoundingIsUnbiasedAndSeeded) {
  // 1.03 in a block with max 256 (se = 0, e4m3): between 1.0 and 1.125, expected 1.03.
  std::vector<float> x(4096, 1.03f);
  x[0] = 256;
  double sum = 0;
  const int seeds = 50;
  for (int s = 0; s < seeds; ++s) {
    auto y = mx::quantize(row(x), {.format = Format::fp8_e4m3, .rounding = Rounding::stochastic, .seed = static_cast<uint64_t>(s)});
    auto v = values(y);
    for (size_t i = 1; i < v.size(); ++i) {
      ASSERT_TRUE(v[i] == 1.0f || v[i] == 1.125f) << v[i];
      sum += v[i];
    }
  }
  const double n = seeds * 4095.0, mean = sum / n;
  const double p = 0.03 / 0.125, sd = 0.125 * std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(mean, 1.03, 5 * sd);
  const mx::QuantizeOptions o{.format = Format::fp8_e4m3, .rounding = Rounding::stochastic, .seed = 3};
  EXPECT_TRUE(torch::equal(mx::quantize(row(x), o), mx::quantize(row(x), o)));
}

TEST(Mx, PackUnpackRoundTripIsExact) {
  for (int fi = 0; fi <= static_cast<int>(Format::int4); ++fi) {
    const auto f = static_cast<Format>(fi);
    auto x = hostile(4 * 70, 99 + fi).view({4, 70});
    x[1][3] = NAN;
    for (int64_t axis : {0, 1}) {
      const mx::QuantizeOptions o{.format = f, .axis = axis};
      auto packed = mx::pack(x, o);
      // Integer codes have no -0 (two's complement): a -0 comes back +0.
      EXPECT_TRUE(same_bits(mx::unpack(packed), mx::quantize(x, o), mx::info(f).ebits == 0)) << mx::info(f).name << " axis " << axis;
      const int64_t blocks = axis == 1 ? 4 * 3 : 70;
      EXPECT_EQ(packed.bytes(), blocks + (280 * mx::info(f).storage_bits + 7) / 8);
    }
  }
  // Hand-derived codes: e4m3 448 = 0 1111 110, 1.0 = 0 0111 000; e2m1 6 = 0 11 1, 0.5 = 0 00 1 (subnormal);
  // int4 -7 (-1.75) = 1001. A block whose max is 448 has se = 0: scale byte 127.
  auto p = mx::pack(row({448, 1}), {.format = Format::fp8_e4m3});
  EXPECT_EQ(p.scales[0][0][0].item<uint8_t>(), 127);
  EXPECT_EQ(p.codes[0].item<uint8_t>(), 0x7E);
  EXPECT_EQ(p.codes[1].item<uint8_t>(), 0x38);
  p = mx::pack(row({6, 0.5f}), {.format = Format::fp4_e2m1});
  EXPECT_EQ(p.codes[0].item<uint8_t>(), 0x17);
  p = mx::pack(row({-1.75f}), {.format = Format::int4});
  EXPECT_EQ(p.codes[0].item<uint8_t>(), 0x09);
}

TEST(Mx, RejectsBadArguments) {
  EXPECT_THROW(mx::quantize(torch::ones({4}, torch::kDouble), {}), std::invalid_argument);
  EXPECT_THROW(mx::quantize(torch::ones({4}), {.axis = 1}), std::invalid_argument);
  EXPECT_THROW(mx::quantize(torch::ones({4}), {.block_size = 0}), std::invalid_argument);
  EXPECT_THROW(mx::pack(torch::ones({4}), {.format = Format::bf16}), std::invalid_argument);
}

TEST(Mx, QuantizeOutWritesWhatQuantizeReturns) {
  torch::manual_seed(5);
  auto x = torch::randn({7, 100}) * 3;
  x[2][5] = NAN;
  x[4].zero_();
  x[5][0] = -0.0f;
  for (auto format : {mx::Format::fp8_e4m3, mx::Format::fp8_e5m2, mx::Format::fp6_e3m2, mx::Format::fp4_e2m1, mx::Format::int8,
                      mx::Format::bf16}) {
    for (auto rounding : {mx::Rounding::nearest, mx::Rounding::even, mx::Rounding::floor, mx::Rounding::stochastic}) {
      for (int64_t axis : {-1, 0}) {
        const mx::QuantizeOptions o{.format = format, .axis = axis, .rounding = rounding, .seed = 3};
        auto out = torch::full_like(x, 123.0f);
        auto& returned = mx::quantize_out(out, x, o);
        EXPECT_EQ(&returned, &out);
        auto expected = mx::quantize(x, o);
        // Bitwise (NaN == NaN, -0 != +0).
        EXPECT_TRUE(torch::equal(out.view(torch::kInt32), expected.view(torch::kInt32))) << mx::info(format).name;
      }
    }
  }
  auto wrong_shape = torch::empty({7, 99});
  EXPECT_THROW(mx::quantize_out(wrong_shape, x, {}), std::invalid_argument);
  auto wrong_dtype = torch::empty({7, 100}, torch::kDouble);
  EXPECT_THROW(mx::quantize_out(wrong_dtype, x, {}), std::invalid_argument);
  auto strided = torch::empty({100, 7}).t();
  EXPECT_THROW(mx::quantize_out(strided, x, {}), std::invalid_argument);
  auto same = x.clone();
  EXPECT_THROW(mx::quantize_out(same, same, {}), std::invalid_argument);
}

}  // namespace
