// Cross-backend harness: every kernel op on every case, CPU vs CUDA (bit-identical) vs the float64 reference
// (deterministic roundings). CUDA comparisons are skipped where no GPU is present.
#include "mx_reference.hpp"

#include <assay/mx.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

namespace {

namespace mx = assay::mx;
using mx::Format;
using mx::Rounding;

struct Case {
  std::string name;
  std::vector<int64_t> shape;
  std::function<at::Tensor(const at::Tensor&)> op;
  std::function<at::Tensor(const at::Tensor&)> reference;  // the float64 reference (empty: none)
};

// Equal bit patterns, any NaN equal to any NaN.
int64_t differing(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.contiguous().cpu(), y = b.contiguous().cpu();
  auto bx = x.view(torch::kInt32), by = y.view(torch::kInt32);
  return ((bx != by) & ~(x.isnan() & y.isnan())).sum().item<int64_t>();
}

// The reference on the tensor's own layout, viewed as [outer, length, inner] around the blocked axis (so element
// indices, which stochastic rounding draws from, are the tensor's row-major positions).
at::Tensor reference_quantize(const at::Tensor& x, const mx::QuantizeOptions& o) {
  const int64_t axis = o.axis < 0 ? o.axis + x.dim() : o.axis;
  auto c = x.contiguous().cpu();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= c.size(d);
  for (int64_t d = axis + 1; d < c.dim(); ++d) inner *= c.size(d);
  std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return torch::tensor(mx::reference::quantize(v, outer, c.size(axis), inner, o.block_size, o.format, o.rounding, o.seed))
      .view(c.sizes());
}

// Elementwise rounding (no shared scale): overflow saturates for MX element formats, goes to Inf for bf16/fp16.
at::Tensor reference_elementwise(const at::Tensor& x, Format f, Rounding r, uint64_t seed) {
  auto c = x.contiguous().cpu();
  std::vector<float> out(c.numel());
  for (int64_t i = 0; i < c.numel(); ++i) {
    out[i] = static_cast<float>(mx::reference::element(c.data_ptr<float>()[i], mx::info(f), r, mx::info(f).block_scaled,
                                                       mx::reference::uniform(seed, static_cast<uint64_t>(i))));
  }
  return torch::tensor(out).view(c.sizes());
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> layouts = {
      {"rows_vector", {64, 96}}, {"rows_vector_tail", {16, 40}}, {"rows_tail", {5, 37}}, {"axis0", {33, 2, 3}},
      {"axis0_wide", {40, 21}}, {"axis0_chunks", {35, 140}}};  // strided blocks: 8 columns per register + the rest
  for (int fi = 0; fi <= static_cast<int>(Format::int4); ++fi) {
    for (int ri = 0; ri < 4; ++ri) {
      const auto f = static_cast<Format>(fi);
      const auto r = static_cast<Rounding>(ri);
      for (const auto& [layout, shape] : layouts) {
        for (int64_t block : {32, 16}) {
          mx::QuantizeOptions o{.format = f, .axis = layout.starts_with("axis0") ? 0 : -1, .block_size = block, .rounding = r, .seed = 11};
          Case c{"quantize/" + std::string(mx::info(f).name) + "/" + std::string(mx::rounding_name(r)) + "/" + layout +
                     "/block" + std::to_string(block),
                 shape, [o](const at::Tensor& x) { return mx::quantize(x, o); }, {}};
          c.reference = [o](const at::Tensor& x) { return reference_quantize(x, o); };
          out.push_back(c);
        }
      }
    }
  }
  for (auto f : {Format::bf16, Format::fp16, Format::fp8_e4m3}) {
    for (int ri = 0; ri < 4; ++ri) {
      const auto r = static_cast<Rounding>(ri);
      out.push_back({"elementwise/" + std::string(mx::info(f).name) + "/" + std::string(mx::rounding_name(r)), {1000},
                     [f, r](const at::Tensor& x) { return mx::round_elementwise(x, f, r, 5); },
                     [f, r](const at::Tensor& x) { return reference_elementwise(x, f, r, 5); }});
    }
  }
  out.push_back({"pack_unpack/fp6_e3m2", {16, 40}, [](const at::Tensor& x) {
                   return mx::unpack(mx::pack(x, {.format = Format::fp6_e3m2}));
                 }, [](const at::Tensor& x) { return reference_quantize(x, {.format = Format::fp6_e3m2}); }});
  return out;
}

// Normal values over many binades, zeros (both signs), powers of two and their predecessors, exact bf16/fp16 ties,
// subnormals, values near float32's top (overflow in bf16/fp16, clipping in MX), one NaN block.
at::Tensor input(const std::vector<int64_t>& shape, uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = torch::randn(shape, g) * torch::exp2(torch::randint(-20, 20, shape, g).to(torch::kFloat));
  auto flat = x.view({-1});
  const int64_t n = flat.numel();
  for (int64_t i = 0; i < n; i += 7) flat[i] = std::ldexp(1.0f, static_cast<int>(i % 40) - 20);
  for (int64_t i = 3; i < n; i += 11) flat[i] = std::nextafter(std::ldexp(1.0f, static_cast<int>(i % 30) - 10), 0.0f);
  for (int64_t i = 5; i < n; i += 13) flat[i] = 0;
  for (int64_t i = 6; i < n; i += 17) flat[i] = std::ldexp(1.25f, -140);
  for (int64_t i = 4; i < n; i += 19) flat[i] = -0.0f;
  // exact ties of bf16 (1 + odd/256) and of fp16 (1 + odd/2048), both signs, many binades
  for (int64_t i = 9; i < n; i += 29) flat[i] = (i & 2 ? -1.0f : 1.0f) * std::ldexp(1.0f + (2 * (i % 128) + 1) / 256.0f, static_cast<int>(i % 40) - 20);
  for (int64_t i = 10; i < n; i += 31) flat[i] = (i & 2 ? -1.0f : 1.0f) * std::ldexp(1.0f + (2 * (i % 1024) + 1) / 2048.0f, static_cast<int>(i % 40) - 20);
  for (int64_t i = 8; i < n; i += 23) flat[i] = (i & 1 ? -1.0f : 1.0f) * std::ldexp(1.0f + (i % 64) / 128.0f, 127);  // overflow
  if (n > 100) flat[n - 1] = NAN;
  return x;
}

// The first differing element, for the failure message.
std::string first_difference(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) {
  auto fx = x.reshape({-1}).cpu(), fa = a.reshape({-1}).cpu(), fb = b.reshape({-1}).cpu();
  auto bad = ((fa.view(torch::kInt32) != fb.view(torch::kInt32)) & ~(fa.isnan() & fb.isnan())).nonzero();
  if (bad.numel() == 0) return "";
  const int64_t i = bad[0][0].item<int64_t>();
  char text[200];
  std::snprintf(text, sizeof text, "element %lld: input %a, %a vs %a", static_cast<long long>(i), fx[i].item<float>(),
                fa[i].item<float>(), fb[i].item<float>());
  return text;
}

TEST(MxBackends, CpuMatchesTheReference) {
  int compared = 0;
  for (const auto& c : cases()) {
    if (!c.reference) continue;
    auto x = input(c.shape, std::hash<std::string>{}(c.name));
    const auto ours = c.op(x), expected = c.reference(x);
    EXPECT_EQ(differing(ours, expected), 0) << c.name << ": " << first_difference(x, ours, expected);
    ++compared;
  }
  EXPECT_GT(compared, 100);
}

TEST(MxBackends, CudaIsBitIdenticalToCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& c : cases()) {
    auto x = input(c.shape, std::hash<std::string>{}(c.name));
    auto cpu = c.op(x), cuda = c.op(x.cuda());
    EXPECT_EQ(differing(cpu, cuda), 0) << c.name << " " << first_difference(x, cpu, cuda);
  }
}

}  // namespace
