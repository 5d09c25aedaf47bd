#include <assay/rollout.hpp>

#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "mixed_precision.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Model> gpt() {
  Context context;
  context.task_shape = {11, 11, 16};
  torch::manual_seed(0);
  return testing::plugins().create<Model>("gpt", testing::values_of(Kind::model, "gpt", {{"width", int64_t{32}}, {"heads", int64_t{4}}}),
                                          context);
}

// Autocast caches the bf16 copy of each weight by tensor, not by value, for the rest of its scope; the
// reference's weights are swapped in place, so the cache must not serve the weights they replace.
TEST(ReferencePolicy, ForwardsUnderAutocastUseTheReferenceWeights) {
  auto model = gpt();
  auto x = torch::randint(11, {2, 8}, torch::kLong);
  ReferencePolicy reference;
  reference.snapshot(*model);
  at::Tensor expected;
  {
    AutocastScope autocast(c10::kCPU, c10::kBFloat16);
    expected = model->forward(x).to(torch::kFloat);  // the reference's weights, in a scope of its own
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(0.05 * torch::randn_like(p));
  }
  AutocastScope autocast(c10::kCPU, c10::kBFloat16);
  auto moved = model->forward(x).to(torch::kFloat);  // caches the moved weights' casts
  {
    // The premise: within one scope, an in-place change of a weight is invisible to the next forward.
    torch::NoGradGuard no_grad;
    at::Tensor w;  // a linear layer's weight (autocast casts those; embeddings it does not)
    for (const auto& p : model->named_parameters()) if (!w.defined() && p.key().find("qkv.weight") != std::string::npos) w = p.value();
    ASSERT_TRUE(w.defined());
    auto saved = w.detach().clone();
    w.add_(1.0);
    EXPECT_TRUE(torch::equal(model->forward(x).to(torch::kFloat), moved)) << "autocast did not cache: this test tests nothing";
    w.copy_(saved);
    at::autocast::clear_cache();
  }
  model->forward(x);  // cache the moved weights again
  auto under_reference = reference.with(*model, [&] { return model->forward(x).to(torch::kFloat); });
  EXPECT_TRUE(torch::allclose(under_reference, expected, 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(under_reference, moved, 1e-3, 1e-3));
  EXPECT_TRUE(torch::allclose(model->forward(x).to(torch::kFloat), moved, 1e-6, 1e-6));  // and back
}

}  // namespace
}  // namespace assay
