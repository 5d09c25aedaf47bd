// Cross-backend harness for the fused LayerNorm/RMSNorm (assay/fused_norm.hpp): each backend against float64
// written from the formula, the CPU against CUDA (bit-identical statistics, y and dx; skipped without a GPU), apply()'s
// autograd against backward().
// The grid covers each axis once rather than their product (the float64 references are the cost): LayerNorm and
// RMSNorm, bf16 and fp16, weight+bias / weight / neither, 1 to 2048 rows, D odd and not a multiple of 4 (the CUDA
// kernel vectorizes by 4 where it can; the 7-row cases' tensors are not 16-byte aligned either). Rows are
// 3*randn + 40: their mean square is ~180 times their variance, so a one-pass variance E[x^2] - E[x]^2 in float32
// misses the rstd tolerance; one row is constant (variance 0: rstd = 1/sqrt(eps); its sums are exact in any order).
// y is compared with the formula in float64 evaluated at the kernel's own mean and rstd (which are compared with
// float64 on their own): float32 statistics are off by ~1e-6, which moves y by more than an ulp where x is near the
// mean, without being a fault.
#include <assay/fused_norm.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace fn = assay::fused_norm;
constexpr double kEps = 1e-5;
constexpr double kFloatUlp = 1.0 / (1 << 23);  // float32's ulp at 1: a few of these cover the last float32 operations

struct Config {
  bool rms;
  at::ScalarType dtype;
  bool weight, bias;
  fn::Options options() const { return {.rms = rms, .eps = kEps, .out_dtype = dtype}; }
  std::string name() const {
    return std::string(rms ? "rms/" : "layer/") + (dtype == at::kHalf ? "fp16/" : "bf16/") +
           (bias ? "weight+bias" : weight ? "weight" : "plain");
  }
};

std::vector<Config> configs() {
  std::vector<Config> out;
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    for (bool rms : {false, true}) {
      if (!rms) out.push_back({rms, dtype, true, true});
      out.push_back({rms, dtype, true, false});
      out.push_back({rms, dtype, false, false});
    }
  }
  return out;
}

// {rows, D}: every D and every row count at least once, each D with several row counts where cheap.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1},     {2048, 1},   {7, 3},      {300, 5},
                                                          {1, 64},    {2048, 64},  {7, 768},    {300, 768},
                                                          {2048, 1000}, {1, 4100}, {7, 4100}};

struct Case {
  Config config;
  int64_t rows, dim;
  std::string name;
  at::Tensor x, weight, bias, dy;  // float32 [rows, D], [D], [D]; dy in config.dtype
  bool misaligned() const { return rows == 7; }
};

// t on `device`; if `misalign`, one element into its storage (contiguous, but not 16-byte aligned: the CUDA kernel
// must then not use its 16-byte loads).
at::Tensor place(const at::Tensor& t, at::Device device, bool misalign) {
  if (!t.defined() || !misalign) return t.defined() ? t.to(device) : t;
  auto out = at::empty({t.numel() + 1}, t.options().device(device)).narrow(0, 1, t.numel()).view(t.sizes());
  return out.copy_(t);
}

Case make_case(const Config& c, int64_t rows, int64_t dim) {
  Case k{c, rows, dim, c.name() + "/" + std::to_string(rows) + "x" + std::to_string(dim), {}, {}, {}, {}};
  auto g = at::make_generator<at::CPUGeneratorImpl>(std::hash<std::string>{}(k.name));
  k.x = torch::randn({rows, dim}, g) * 3 + 40;
  if (rows > 2) k.x[rows / 2].fill_(40);
  if (c.weight) k.weight = 1 + 0.5 * torch::randn({dim}, g);
  if (c.bias) k.bias = torch::randn({dim}, g);
  k.dy = torch::randn({rows, dim}, g).to(c.dtype);
  for (auto* t : {&k.x, &k.weight, &k.bias, &k.dy}) *t = place(*t, at::kCPU, k.misaligned());
  return k;
}

at::Tensor f64(const at::Tensor& t, double otherwise, int64_t dim) {
  return t.defined() ? t.cpu().to(at::kDouble) : at::full({dim}, otherwise, at::kDouble);
}

// One ulp of `dtype` at each float64 value: bf16 has 8 significant bits, fp16 11 and subnormals below 2^-14.
at::Tensor ulp(const at::Tensor& v, at::ScalarType dtype) {
  const auto e = at::floor(at::log2(v.abs()));
  return dtype == at::kHalf ? at::exp2(at::clamp_min(e, -14) - 10) : at::exp2(at::clamp_min(e, -126) - 7);
}

// "element i: a vs b (allowed difference t)" where `excess` is largest, for failure messages.
std::string at_worst(const at::Tensor& excess, const at::Tensor& a, const at::Tensor& b, const at::Tensor& allowed) {
  const int64_t i = excess.reshape({-1}).argmax().item<int64_t>();
  auto at = [i](const at::Tensor& t) { return t.reshape({-1})[i].item<double>(); };
  char text[160];
  std::snprintf(text, sizeof text, "element %lld: %.9g vs %.9g (allowed difference %.3g)", static_cast<long long>(i),
                at(a), at(b), at(allowed));
  return text;
}

// Forward against float64: mean and rstd within 1e-5 (the mean relative to the row's mean |x|, which bounds its sum's
// error), y within one ulp of the formula at the kernel's statistics plus a few float32 ulps of its terms (those
// matter only where (x - mean) * rstd * w and b cancel), and correctly rounded in all but ~1% of elements (a value
// within float32 error of a rounding midpoint may land either side; a wrong rounding mode would fail ~half).
void check_forward(const Case& k, const fn::Forward& f) {
  const auto& c = k.config;
  ASSERT_EQ(f.y.scalar_type(), c.dtype) << k.name;
  ASSERT_EQ(f.y.sizes(), k.x.sizes()) << k.name;
  const auto x = k.x.to(at::kDouble), w = f64(k.weight, 1, k.dim), b = f64(k.bias, 0, k.dim);
  const auto mean = c.rms ? at::zeros({k.rows}, at::kDouble) : x.sum(1) / k.dim;
  const auto centered = x - mean.unsqueeze(1);
  const auto rstd = 1 / at::sqrt((centered * centered).sum(1) / k.dim + kEps);
  const auto m = f.mean.cpu().to(at::kDouble), r = f.rstd.cpu().to(at::kDouble);
  const auto mean_allowed = 1e-5 * x.abs().mean(1), mean_excess = (m - mean).abs() - mean_allowed;
  const auto rstd_allowed = 1e-5 * rstd, rstd_excess = (r - rstd).abs() - rstd_allowed;
  EXPECT_LE(mean_excess.max().item<double>(), 0)
      << k.name << " mean, row " << at_worst(mean_excess, m, mean, mean_allowed);
  EXPECT_LE(rstd_excess.max().item<double>(), 0)
      << k.name << " rstd, row " << at_worst(rstd_excess, r, rstd, rstd_allowed);

  const auto term = (x - m.unsqueeze(1)) * r.unsqueeze(1) * w, v = term + b;
  const auto y = f.y.cpu().to(at::kDouble);
  const auto allowed = ulp(v, c.dtype) + 4 * kFloatUlp * (term.abs() + b.abs()), excess = (y - v).abs() - allowed;
  EXPECT_LE(excess.max().item<double>(), 0) << k.name << " y, " << at_worst(excess, y, v, allowed);
  const int64_t misrounded = (f.y.cpu() != v.to(c.dtype)).sum().item<int64_t>();
  EXPECT_LE(misrounded, 1 + y.numel() / 100)
      << k.name << ": y not correctly rounded in " << misrounded << " of " << y.numel();
}

// max |a - b| <= tolerance * scale, a and b moved to float64 on the CPU.
void expect_close(const at::Tensor& a, const at::Tensor& b, double tolerance, double scale, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what << ": undefined";
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const auto x = a.cpu().to(at::kDouble), y = b.cpu().to(at::kDouble);
  const auto excess = (x - y).abs() - tolerance * scale;
  EXPECT_LE(excess.max().item<double>(), 0) << what << ", scale " << scale << ", "
                                             << at_worst(excess, x, y, at::full_like(x, tolerance * scale));
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

// Gradients against expected ones: 1e-4 (float32 sums over up to 4100 columns or 2048 rows, float32 statistics)
// relative to the largest value; for dx, or to the largest rstd * |w * dy| (the size of the terms its formula cancels);
// for dweight and dbias, or to 1e-3 (a D = 1 LayerNorm's dweight is 0, float64's rounding of it is not).
void expect_gradients(const Case& k, const fn::Gradients& g, const fn::Gradients& expected, const at::Tensor& rstd,
                      const std::string& what) {
  ASSERT_EQ(g.weight.defined(), k.config.weight) << k.name;
  ASSERT_EQ(g.bias.defined(), k.config.bias) << k.name;
  const auto terms = rstd.cpu().to(at::kDouble).unsqueeze(1) * k.dy.to(at::kDouble) * f64(k.weight, 1, k.dim);
  expect_close(g.x, expected.x, 1e-4, std::max(max_abs(expected.x), max_abs(terms)), k.name + " dx " + what);
  if (k.config.weight) {
    expect_close(g.weight, expected.weight, 1e-4, std::max(max_abs(expected.weight), 1e-3), k.name + " dweight " + what);
  }
  if (k.config.bias) {
    expect_close(g.bias, expected.bias, 1e-4, std::max(max_abs(expected.bias), 1e-3), k.name + " dbias " + what);
  }
}

// Backward (fed the forward's mean and rstd) against float64 autograd of at::layer_norm, or of RMSNorm written out.
void check_backward(const Case& k, const fn::Forward& f, const fn::Gradients& g) {
  const auto& c = k.config;
  auto x = k.x.to(at::kDouble).requires_grad_();
  auto w = c.weight ? k.weight.to(at::kDouble).requires_grad_() : at::Tensor();
  auto b = c.bias ? k.bias.to(at::kDouble).requires_grad_() : at::Tensor();
  auto y = c.rms ? x * at::rsqrt((x * x).mean(-1, true) + kEps) : at::layer_norm(x, {k.dim}, w, b, kEps);
  if (c.rms && c.weight) y = y * w;
  y.backward(k.dy.to(at::kDouble));
  expect_gradients(k, g, {x.grad(), c.weight ? w.grad() : w, c.bias ? b.grad() : b}, f.rstd, "vs float64");
}

// Runs `body` on every case (one config's cases in a row: a failure names its case).
void for_each_case(const std::function<void(const Case&)>& body) {
  for (const auto& c : configs()) {
    for (const auto& [rows, dim] : kShapes) body(make_case(c, rows, dim));
  }
}

TEST(FusedNorm, CpuMatchesFloat64) {
  for_each_case([](const Case& k) {
    const auto o = k.config.options();
    const auto f = fn::forward(k.x, k.weight, k.bias, o);
    check_forward(k, f);
    check_backward(k, f, fn::backward(k.dy, k.x, f.mean, f.rstd, k.weight, k.bias.defined(), o));
  });
}

TEST(FusedNormBackends, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for_each_case([](const Case& k) {
    const auto o = k.config.options();
    auto cuda = [&k](const at::Tensor& t) { return place(t, at::kCUDA, k.misaligned()); };
    const auto cpu = fn::forward(k.x, k.weight, k.bias, o);
    const auto gpu = fn::forward(cuda(k.x), cuda(k.weight), cuda(k.bias), o);
    check_forward(k, gpu);
    const auto gg = fn::backward(cuda(k.dy), cuda(k.x), gpu.mean, gpu.rstd, cuda(k.weight), k.bias.defined(), o);
    check_backward(k, gpu, gg);
    // The CPU adds each row in the CUDA kernel's order: statistics, y and dx bit-identical (whatever the alignment).
    for (const auto& [a, b, what] : {std::tuple{cpu.y, gpu.y, "y"}, std::tuple{cpu.mean, gpu.mean, "mean"},
                                      std::tuple{cpu.rstd, gpu.rstd, "rstd"}}) {
      const int64_t differing = (a.view(a.scalar_type() == at::kFloat ? at::kInt : at::kShort) !=
                                 b.cpu().view(a.scalar_type() == at::kFloat ? at::kInt : at::kShort)).sum().item<int64_t>();
      EXPECT_EQ(differing, 0) << k.name << ": " << what << " differs between CPU and CUDA in " << differing << " of " << a.numel();
    }
    const auto gc = fn::backward(k.dy, k.x, cpu.mean, cpu.rstd, k.weight, k.bias.defined(), o);
    EXPECT_TRUE(at::equal(gc.x.view(at::kInt), gg.x.cpu().view(at::kInt))) << k.name << ": dx differs between CPU and CUDA";
    expect_gradients(k, gg, gc, cpu.rstd, "cuda vs cpu");  // weight/bias: summed over other row groups
  });
}

// apply(): y in out_dtype with x's [..., D] shape, for a 3-D x whose last dimension is strided (a transpose), and
// autograd's gradients (through the transpose) equal to backward()'s.
void check_apply(const at::Device device) {
  for (const auto& c : configs()) {
    for (int64_t dim : {5, 768}) {
      const std::string name = c.name() + "/3x4x" + std::to_string(dim) + "/" + device.str();
      auto g = at::make_generator<at::CPUGeneratorImpl>(std::hash<std::string>{}(name));
      auto base = (torch::randn({3, dim, 4}, g) * 3 + 40).to(device).requires_grad_();
      auto w = c.weight ? (1 + 0.5 * torch::randn({dim}, g)).to(device).requires_grad_() : at::Tensor();
      auto b = c.bias ? torch::randn({dim}, g).to(device).requires_grad_() : at::Tensor();
      const auto dy = torch::randn({3, 4, dim}, g).to(c.dtype).to(device);
      const auto x = base.transpose(1, 2);  // [3, 4, D], D strided
      ASSERT_FALSE(x.is_contiguous());
      at::Tensor y;
      EXPECT_NO_THROW(y = fn::apply(x, w, b, c.options())) << name;
      if (!y.defined()) continue;
      EXPECT_EQ(y.scalar_type(), c.dtype) << name;
      EXPECT_EQ(y.sizes(), x.sizes()) << name;
      const auto xd = x.detach(), wd = c.weight ? w.detach() : w;
      const auto f = fn::forward(xd.contiguous(), wd, c.bias ? b.detach() : b, c.options());
      EXPECT_TRUE(at::equal(y.detach(), f.y)) << name << ": apply() and forward() differ";
      y.backward(dy);
      const auto expected = fn::backward(dy, xd, f.mean, f.rstd, wd, c.bias, c.options());
      ASSERT_TRUE(base.grad().defined()) << name;
      EXPECT_TRUE(at::allclose(base.grad().transpose(1, 2), expected.x)) << name << " dx";
      if (c.weight) EXPECT_TRUE(w.grad().defined() && at::allclose(w.grad(), expected.weight)) << name << " dweight";
      if (c.bias) EXPECT_TRUE(b.grad().defined() && at::allclose(b.grad(), expected.bias)) << name << " dbias";
    }
  }
}

TEST(FusedNorm, ApplyIsDifferentiable) { check_apply(at::kCPU); }

TEST(FusedNormBackends, ApplyIsDifferentiableOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  check_apply(at::kCUDA);
}

TEST(FusedNorm, RejectsBadArguments) {
  const auto x = torch::randn({4, 8}), w = torch::ones({8}), b = torch::zeros({8});
  EXPECT_NO_THROW(fn::apply(x, w, b));  // the control: what the cases below change is what makes them fail
  EXPECT_THROW(fn::apply(x.to(at::kDouble), w, b), std::invalid_argument);
  EXPECT_THROW(fn::apply(x, w, b, {.rms = true}), std::invalid_argument);
  EXPECT_THROW(fn::apply(x, torch::ones({7}), b), std::invalid_argument);
  EXPECT_THROW(fn::apply(x, w, b, {.out_dtype = at::kFloat}), std::invalid_argument);
}

}  // namespace
