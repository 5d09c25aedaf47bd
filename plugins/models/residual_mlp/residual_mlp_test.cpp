#include <gtest/gtest.h>

#include <assay/layers.hpp>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Model> residual_mlp(const Values& overrides, TaskShape shape = {0, 8, 8}, uint64_t seed = 3) {
  Context context;
  context.task_shape = shape;
  torch::manual_seed(seed);
  return testing::plugins().create<Model>("residual_mlp", testing::values_of(Kind::model, "residual_mlp", overrides), context);
}

// The spec's block in float64, written out: LN(x) = (x - mean) / sqrt(var + eps) * g + b (biased variance),
// GELU(u) = u/2 (1 + erf(u / sqrt 2)), x <- x + W2 GELU(W1 LN(x)) + b2.
at::Tensor reference_forward(Model& model, const at::Tensor& inputs, int64_t depth) {
  auto p = model.named_parameters();
  auto d = [&](const std::string& name) { return p[name].detach().to(torch::kDouble); };
  auto x = inputs.to(torch::kDouble);
  for (int64_t l = 0; l < depth; ++l) {
    const std::string b = "block" + std::to_string(l) + ".";
    auto mean = x.mean(1, true);
    auto var = (x - mean).square().mean(1, true);
    auto z = (x - mean) / (var + 1e-5).sqrt() * d(b + "ln.weight") + d(b + "ln.bias");
    auto u = z.matmul(d(b + "fc1.weight").t());
    auto h = 0.5 * u * (1 + (u / std::sqrt(2.0)).erf());
    x = x + h.matmul(d(b + "fc2.weight").t()) + d(b + "fc2.bias");
  }
  return x;
}

TEST(ResidualMlp, ForwardMatchesFloat64Formula) {
  auto model = residual_mlp({{"depth", int64_t{3}}});
  {
    // LayerNorm starts at (1, 0): move it so that the affine part is exercised.
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (item.key().find(".ln.") != std::string::npos) item.value().add_(torch::randn_like(item.value()) * 0.5);
    }
  }
  auto p = model->named_parameters();
  EXPECT_EQ(p.size(), 3u * 5u);  // ln.weight, ln.bias, fc1.weight, fc2.weight, fc2.bias: fc1 has no bias
  EXPECT_EQ(p.find("block0.fc1.bias"), nullptr);
  EXPECT_EQ(p["block2.fc1.weight"].sizes(), (std::vector<int64_t>{32, 8}));  // d -> 4d
  EXPECT_EQ(p["block2.fc2.weight"].sizes(), (std::vector<int64_t>{8, 32}));
  auto inputs = torch::randn({5, 8}) * 2 + 0.3;
  auto out = model->forward(inputs);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 8}));
  auto expected = reference_forward(*model, inputs, 3);
  EXPECT_TRUE(torch::allclose(out.to(torch::kDouble), expected, 1e-5, 1e-5)) << (out - expected).abs().max();
  // Not the identity: the blocks contribute.
  EXPECT_GT((expected - inputs.to(torch::kDouble)).abs().max().item<double>(), 1e-2);
}

TEST(ResidualMlp, HiddenRatioAndHiddenStates) {
  auto model = residual_mlp({{"depth", int64_t{2}}, {"hidden_ratio", int64_t{2}}, {"width", int64_t{8}}});
  EXPECT_EQ(model->named_parameters()["block1.fc1.weight"].sizes(), (std::vector<int64_t>{16, 8}));
  auto inputs = torch::randn({4, 8});
  auto states = model->hidden_states(inputs, {0, 2, 1});
  ASSERT_EQ(states.size(), 3u);
  EXPECT_TRUE(torch::equal(states[0], inputs));
  EXPECT_TRUE(torch::allclose(states[1], model->forward(inputs)));
  EXPECT_TRUE(torch::allclose(states[2].to(torch::kDouble), reference_forward(*model, inputs, 1), 1e-5, 1e-5));
  EXPECT_THROW(model->hidden_states(inputs, {3}), std::invalid_argument);
  EXPECT_TRUE(torch::equal(model->hidden_states(inputs, {-1})[0], states[1]));  // -1 = after the last block
  EXPECT_THROW(model->hidden_states(inputs, {-4}), std::invalid_argument);
}

TEST(ResidualMlp, GroupsCoverEveryParameterOnce) {
  auto model = residual_mlp({{"depth", int64_t{3}}});
  std::map<std::string, size_t> sizes;
  std::set<const void*> seen;
  for (auto& group : model->param_groups()) {
    sizes[group.name] = group.params.size();
    for (auto& p : group.params) EXPECT_TRUE(seen.insert(p.unsafeGetTensorImpl()).second) << group.name;
  }
  EXPECT_EQ(sizes, (std::map<std::string, size_t>{{"fc1", 3}, {"fc2", 6}, {"norms", 6}}));
  for (auto& p : model->parameters()) EXPECT_EQ(seen.count(p.unsafeGetTensorImpl()), 1u);
  EXPECT_EQ(seen.size(), model->parameters().size());
}

// Kernels that count their calls and compute what the defaults compute.
struct CountingLinear : LinearKernel {
  mutable int calls = 0;
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const override {
    ++calls;
    return at::linear(x, w, b);
  }
};
struct ZeroNorm : NormKernel {
  mutable int calls = 0;
  at::Tensor norm(const at::Tensor& x, const at::Tensor&, const at::Tensor&, double eps, bool rms) const override {
    ++calls;
    EXPECT_DOUBLE_EQ(eps, 1e-5);
    EXPECT_FALSE(rms);
    return at::zeros_like(x);  // fc1(0) = 0, GELU(0) = 0: each block then adds only fc2's bias
  }
};

TEST(ResidualMlp, EveryLinearAndNormIsAnSdkLayerWhoseKernelIsUsed) {
  const int64_t depth = 4;
  auto model = residual_mlp({{"depth", depth}});
  auto linear = std::make_shared<CountingLinear>();
  auto norm = std::make_shared<ZeroNorm>();
  int linears = 0, norms = 0;
  for (auto& module : model->modules()) {
    if (auto* l = dynamic_cast<LinearImpl*>(module.get())) {
      l->kernel = linear;
      ++linears;
    }
    if (auto* n = dynamic_cast<NormImpl*>(module.get())) {
      n->kernel = norm;
      ++norms;
    }
  }
  EXPECT_EQ(linears, 2 * depth);
  EXPECT_EQ(norms, depth);
  auto inputs = torch::randn({3, 8});
  auto out = model->forward(inputs);
  EXPECT_EQ(linear->calls, 2 * depth);
  EXPECT_EQ(norm->calls, depth);
  auto p = model->named_parameters();
  auto expected = inputs.clone();
  for (int64_t l = 0; l < depth; ++l) expected += p["block" + std::to_string(l) + ".fc2.bias"];
  EXPECT_TRUE(torch::allclose(out, expected, 1e-6, 1e-6));
}

TEST(ResidualMlp, GradientsReachEveryParameter) {
  auto model = residual_mlp({{"depth", int64_t{2}}});
  model->forward(torch::randn({6, 8})).square().mean().backward();
  for (auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
  }
}

TEST(ResidualMlp, RefusesTokenTasksAndMismatchedWidths) {
  EXPECT_THROW(residual_mlp({}, {31, 31, 2}), std::invalid_argument);                  // token inputs
  EXPECT_THROW(residual_mlp({{"width", int64_t{16}}}, {0, 8, 8}), std::invalid_argument);  // width != d
  EXPECT_THROW(residual_mlp({}, {0, 4, 8}), std::invalid_argument);                     // output dim != input dim
  auto model = residual_mlp({});
  EXPECT_THROW(model->forward(torch::zeros({2, 8}, torch::kLong)), c10::Error);
}

TEST(ResidualMlp, SameSeedSameInitialization) {
  auto a = residual_mlp({}, {0, 8, 8}, 11), b = residual_mlp({}, {0, 8, 8}, 11), c = residual_mlp({}, {0, 8, 8}, 12);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  EXPECT_TRUE(torch::equal(pa["block3.fc1.weight"], pb["block3.fc1.weight"]));
  EXPECT_FALSE(torch::equal(pa["block3.fc1.weight"], pc["block3.fc1.weight"]));
  // torch's default Linear init: U(+-1/sqrt(fan_in)).
  EXPECT_LE(pa["block0.fc1.weight"].abs().max().item<double>(), 1 / std::sqrt(8.0));
  EXPECT_LE(pa["block0.fc2.weight"].abs().max().item<double>(), 1 / std::sqrt(32.0));
}

}  // namespace
}  // namespace assay
