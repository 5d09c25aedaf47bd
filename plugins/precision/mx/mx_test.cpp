// The mx precision scheme against the spec's MX linear layer, composed here from the (separately tested) kernels.
#include <assay/layers.hpp>
#include <assay/mx.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

using mx::Format;

at::Tensor bf(const at::Tensor& t) { return mx::round_elementwise(t, Format::bf16); }
at::Tensor Q(const at::Tensor& t, Format f, int64_t axis) { return mx::quantize(t.contiguous(), {.format = f, .axis = axis}); }

// fc1 (with bias) -> norm -> GELU -> fc2 (no bias), on real-valued inputs.
class Tiny : public Model {
 public:
  Tiny() {
    fc1 = register_module("fc1", Linear(64, 48, true));
    norm = register_module("norm", Norm(NormOptions{.dim = 48}));
    fc2 = register_module("fc2", Linear(48, 8, false));
    torch::NoGradGuard no_grad;
    norm->weight.uniform_(0.5, 1.5);
    norm->bias.uniform_(-0.1, 0.1);
  }
  at::Tensor forward(const at::Tensor& x) override { return fc2->forward(torch::gelu(norm->forward(fc1->forward(x)))); }
  std::vector<ParamGroup> param_groups() override {
    return {{"fc1", fc1->parameters()}, {"norms", norm->parameters()}, {"fc2", fc2->parameters()}};
  }
  Linear fc1{nullptr}, fc2{nullptr};
  Norm norm{nullptr};
};

std::shared_ptr<Precision> scheme(const Values& overrides) {
  Context context;
  context.seed = 3;
  return testing::plugins().create<Precision>("mx", testing::values_of(Kind::precision, "mx", overrides), context);
}

const Values kDistinctFormats = {{"weights", std::string("fp8_e4m3")}, {"activations", std::string("fp6_e2m3")},
                                 {"weights_bp", std::string("fp8_e5m2")}, {"activations_bp", std::string("fp4_e2m1")},
                                 {"grads", std::string("int8")}};

TEST(MxPrecision, LinearForwardAndBackwardFollowTheSpec) {
  torch::manual_seed(0);
  Tiny model;
  scheme(kDistinctFormats)->apply(model);
  auto& fc1 = *model.fc1;
  auto x = torch::randn({3, 5, 64}, torch::requires_grad());
  auto y = fc1.forward(x);
  auto dy = torch::randn({3, 5, 48});
  y.backward(dy);

  // Forward: y = bf(Qa(bf x) . Qw(bf W)^T), y = bf(y + bf b), blocks along in_features (axis 1 of x2 and W).
  auto x2 = bf(x.detach().reshape({15, 64}));
  auto w = bf(fc1.weight.detach());
  auto expected = bf(bf(torch::matmul(Q(x2, Format::fp6_e2m3, 1), Q(w, Format::fp8_e4m3, 1).t())) + bf(fc1.bias.detach()));
  EXPECT_TRUE(torch::equal(y.detach().reshape({15, 48}), expected));
  // Backward with g = bf(dy): dW along tokens (axis 0 of g and x2), dx along out_features (g axis 1, W axis 0).
  auto g = bf(dy.reshape({15, 48}));
  auto dw = bf(torch::matmul(Q(g, Format::int8, 0).t(), Q(x2, Format::fp4_e2m1, 0)));
  auto dx = bf(torch::matmul(Q(g, Format::int8, 1), Q(w, Format::fp8_e5m2, 0)));
  EXPECT_TRUE(torch::equal(fc1.weight.grad(), dw));
  EXPECT_TRUE(torch::equal(x.grad().reshape({15, 64}), dx));
  EXPECT_TRUE(torch::equal(fc1.bias.grad(), bf(g.sum(0))));
  // The comparison can tell the axes apart: blocks along the other axis give another dW.
  EXPECT_FALSE(torch::equal(fc1.weight.grad(), bf(torch::matmul(Q(g, Format::int8, 1).t(), Q(x2, Format::fp4_e2m1, 1)))));
}

// GELU rounded on its own in bf16 (output bf(GELU(u)), input gradient bf(GELU'(u) dy), as a bf16 GELU computes
// them) against the plain float32 GELU between two mx linears: the next GEMM rounds GELU's output and the previous
// one rounds the gradient it receives (g = bf(dy)), so the two agree bit for bit (docs/precision.md).
struct RoundedGelu : torch::autograd::Function<RoundedGelu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u) {
    ctx->save_for_backward({u});
    return bf(torch::gelu(u));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list dy) {
    return {bf(torch::gelu_backward(dy[0], ctx->get_saved_variables()[0]))};
  }
};

TEST(MxPrecision, GeluRoundedOnItsOwnChangesNothing) {
  torch::manual_seed(4);
  Tiny plain, rounded;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < plain.parameters().size(); ++i) rounded.parameters()[i].copy_(plain.parameters()[i]);
  }
  scheme(kDistinctFormats)->apply(plain);
  scheme(kDistinctFormats)->apply(rounded);
  auto x = torch::randn({6, 64}) * 3;
  auto dy = torch::randn({6, 8});
  auto y_plain = plain.fc2->forward(torch::gelu(plain.fc1->forward(x)));
  auto y_rounded = rounded.fc2->forward(RoundedGelu::apply(rounded.fc1->forward(x)));
  y_plain.backward(dy);
  y_rounded.backward(dy);
  EXPECT_TRUE(torch::equal(y_plain, y_rounded));
  EXPECT_TRUE(torch::equal(plain.fc1->weight.grad(), rounded.fc1->weight.grad()));
  EXPECT_TRUE(torch::equal(plain.fc2->weight.grad(), rounded.fc2->weight.grad()));
  // The rounding inside is real: GELU's float32 output differs from its bf16 rounding here.
  EXPECT_FALSE(torch::equal(torch::gelu(plain.fc1->forward(x)), bf(torch::gelu(plain.fc1->forward(x)))));
}

TEST(MxPrecision, ForwardOnlyLeavesTheBackwardGemmsUnquantized) {
  torch::manual_seed(1);
  Tiny model;
  auto overrides = kDistinctFormats;
  overrides["quantize_backprop"] = false;
  scheme(overrides)->apply(model);
  auto x = torch::randn({7, 64});
  auto dy = torch::randn({7, 48});
  model.fc1->forward(x).backward(dy);
  EXPECT_TRUE(torch::equal(model.fc1->weight.grad(), bf(torch::matmul(bf(dy).t(), bf(x)))));
}

TEST(MxPrecision, Fp32FormatsWithFp32VectorOpsAreThePlainLayer) {
  torch::manual_seed(2);
  Tiny model;
  scheme({{"weights", std::string("fp32")}, {"activations", std::string("fp32")}, {"vector_ops", std::string("fp32")},
          {"norm_affine", std::string("fp32")}})->apply(model);
  auto x = torch::randn({9, 64});
  auto y = model.forward(x);
  clear_layer_kernels(model);
  EXPECT_TRUE(torch::allclose(y, model.forward(x), 1e-6, 1e-6));
}

TEST(MxPrecision, ExemptGroupsStayFloat32AndUnknownGroupsAreRejected) {
  Tiny model;
  scheme({{"exempt_groups", std::vector<std::string>{"fc2", "norms"}}})->apply(model);
  EXPECT_TRUE(model.fc1->kernel);
  EXPECT_FALSE(model.fc2->kernel);
  EXPECT_FALSE(model.norm->kernel);
  EXPECT_EQ(clear_layer_kernels(model), 3);
  EXPECT_FALSE(model.fc1->kernel);
  EXPECT_THROW(scheme({{"exempt_groups", std::vector<std::string>{"head"}}})->apply(model), std::invalid_argument);
}

TEST(MxPrecision, NormAffineInMxQuantizesParametersAndTheirGradients) {
  torch::manual_seed(4);
  Tiny model;
  scheme({{"norm_affine", std::string("mx")}, {"grads", std::string("fp8_e5m2")}})->apply(model);
  auto x = torch::randn({6, 48}, torch::requires_grad());
  auto y = model.norm->forward(x);
  auto expected = bf(at::layer_norm(bf(x.detach()), {48}, Q(model.norm->weight.detach(), Format::fp8_e4m3, 0),
                                    Q(model.norm->bias.detach(), Format::fp8_e4m3, 0), 1e-5));
  EXPECT_TRUE(torch::equal(y.detach(), expected));
  y.backward(torch::randn({6, 48}));
  auto gw = model.norm->weight.grad();
  EXPECT_TRUE(torch::equal(gw, Q(gw, Format::fp8_e5m2, 0)));  // already on the e5m2 grid: quantized once
  EXPECT_TRUE(torch::equal(x.grad(), bf(x.grad())));           // the input gradient is bf16-rounded
}

// Cosine of the MX gradient with the float32 one on the same batch and weights.
double gradient_cosine(const Values& overrides) {
  torch::manual_seed(5);
  Tiny model;
  auto x = torch::randn({64, 64});
  auto target = torch::randn({64, 8});
  auto grads = [&] {
    model.zero_grad();
    torch::mse_loss(model.forward(x), target).backward();
    std::vector<at::Tensor> g;
    for (auto& p : model.parameters()) g.push_back(p.grad().reshape({-1}).clone());
    return torch::cat(g);
  };
  auto reference = grads();
  scheme(overrides)->apply(model);
  auto quantized = grads();
  return torch::cosine_similarity(reference, quantized, 0).item<double>();
}

TEST(MxPrecision, GradientFidelityOrdersTheFormats) {
  const auto all = [](const std::string& f) {
    return Values{{"weights", f}, {"activations", f}, {"norm_affine", std::string("mx")}};
  };
  const double e4m3 = gradient_cosine(all("fp8_e4m3")), e2m1 = gradient_cosine(all("fp4_e2m1"));
  EXPECT_GT(e4m3, 0.99);
  EXPECT_LT(e2m1, e4m3);
  EXPECT_GT(e2m1, 0.5);  // still a descent direction
}

TEST(MxPrecision, Fp16EmulationRoundsEveryOperandAndVectorOp) {
  torch::manual_seed(6);
  Tiny model;
  Context context;
  testing::plugins().create<Precision>("fp16", testing::values_of(Kind::precision, "fp16"), context)->apply(model);
  auto x = torch::randn({5, 64});
  auto h = [](const at::Tensor& t) { return mx::round_elementwise(t, Format::fp16); };
  auto expected = h(h(torch::matmul(h(h(x)), h(h(model.fc1->weight.detach())).t())) + h(model.fc1->bias.detach()));
  EXPECT_TRUE(torch::equal(model.fc1->forward(x).detach(), expected));
}

TEST(MxPrecision, ModelsWithoutAssayLayersAreRejected) {
  class Raw : public Model {
   public:
    Raw() { w = register_parameter("w", torch::randn({4, 4})); }
    at::Tensor forward(const at::Tensor& x) override { return x.matmul(w); }
    at::Tensor w;
  } raw;
  EXPECT_THROW(scheme({})->apply(raw), std::invalid_argument);
}

}  // namespace
}  // namespace assay
