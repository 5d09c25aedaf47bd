#include "mixed_precision.hpp"

#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <limits>

namespace assay {
namespace {

TEST(AutocastScope, MatmulRunsInTheLowerDtypeInsideOnly) {
  torch::manual_seed(0);
  auto a = torch::randn({8, 16}), b = torch::randn({16, 4});
  {
    AutocastScope scope(c10::kCPU, c10::kBFloat16);
    auto inside = torch::matmul(a, b);
    EXPECT_EQ(inside.scalar_type(), c10::kBFloat16);
    // Autocast's rule for matmul: cast the float32 operands, then the op.
    EXPECT_TRUE(torch::equal(inside, torch::matmul(a.to(c10::kBFloat16), b.to(c10::kBFloat16))));
    auto doubles = torch::matmul(a.to(c10::kDouble), b.to(c10::kDouble));
    EXPECT_EQ(doubles.scalar_type(), c10::kDouble) << "float64 is never cast down";
  }
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), c10::kFloat);
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCPU));
}

TEST(AutocastScope, NestedScopesRestoreTheOuterOne) {
  auto a = torch::randn({4, 4});
  {
    AutocastScope outer(c10::kCPU, c10::kHalf);
    {
      AutocastScope inner(c10::kCPU, c10::kBFloat16);
      EXPECT_EQ(torch::matmul(a, a).scalar_type(), c10::kBFloat16);
    }
    EXPECT_EQ(torch::matmul(a, a).scalar_type(), c10::kHalf);
    AutocastScope off(c10::kCPU, c10::ScalarType::Undefined);  // "off" changes nothing
    EXPECT_EQ(torch::matmul(a, a).scalar_type(), c10::kHalf);
  }
  EXPECT_EQ(torch::matmul(a, a).scalar_type(), c10::kFloat);
}

TEST(AutocastDtype, NamesAndErrors) {
  EXPECT_EQ(autocast_dtype("off"), c10::ScalarType::Undefined);
  EXPECT_EQ(autocast_dtype("bf16"), c10::kBFloat16);
  EXPECT_EQ(autocast_dtype("fp16"), c10::kHalf);
  EXPECT_THROW(autocast_dtype("fp8"), std::invalid_argument);
}

TEST(LossScaler, UnscalesExactlyAndFollowsTheGrowthAndBackoffRule) {
  LossScaler scaler(LossScaler::State{1024.0, 0}, 2.0, 0.5, 3);
  auto p = torch::zeros({3}, torch::requires_grad());
  auto q = torch::zeros({2}, torch::requires_grad());
  auto set_grads = [&](double scale, float last) {
    p.mutable_grad() = torch::tensor({1.0f, -2.0f, 0.25f}) * static_cast<float>(scale);
    q.mutable_grad() = torch::tensor({3.0f, last}) * static_cast<float>(scale);
  };
  auto r = torch::zeros({1}, torch::requires_grad());  // no gradient: left alone
  for (int step = 0; step < 2; ++step) {
    set_grads(scaler.scale(), 0.5f);
    EXPECT_TRUE(scaler.unscale_and_update({p, q, r}));
    EXPECT_TRUE(torch::equal(p.grad(), torch::tensor({1.0f, -2.0f, 0.25f})));  // powers of two: exact
    EXPECT_TRUE(torch::equal(q.grad(), torch::tensor({3.0f, 0.5f})));
    EXPECT_FALSE(r.grad().defined());
  }
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_EQ(scaler.state().good_steps, 2);
  set_grads(scaler.scale(), 0.5f);
  EXPECT_TRUE(scaler.unscale_and_update({p, q}));
  EXPECT_EQ(scaler.scale(), 2048.0) << "grows after `interval` good steps";
  EXPECT_EQ(scaler.state().good_steps, 0);
  set_grads(scaler.scale(), std::numeric_limits<float>::infinity());
  EXPECT_FALSE(scaler.unscale_and_update({p, q}));
  EXPECT_EQ(scaler.scale(), 1024.0) << "backs off after an overflow";
  set_grads(scaler.scale(), std::numeric_limits<float>::quiet_NaN());
  EXPECT_FALSE(scaler.unscale_and_update({p, q}));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.state().good_steps, 0);
}

}  // namespace
}  // namespace assay
