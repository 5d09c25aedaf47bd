#include <gtest/gtest.h>

#include "test_support.hpp"

namespace assay {
namespace {

TEST(AdamW, FollowsPyTorchsAdamW) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-6}, {"weight_decay", 0.1}},
      "torch.optim.AdamW(groups, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)", 12);
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, AmsgradFollowsPyTorch) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.003}, {"amsgrad", true}, {"weight_decay", 0.0}},
      "torch.optim.AdamW(groups, lr=0.003, amsgrad=True, weight_decay=0.0)", 12);
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, PerGroupOptionsFollowPyTorchParamGroups) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.01}, {"weight_decay", 0.1}},
      "torch.optim.AdamW([groups[0], dict(groups[1], lr=0.05, weight_decay=0.0)], lr=0.01, weight_decay=0.1)", 8,
      {{"head", {{"lr", 0.05}, {"weight_decay", 0.0}}}});
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, UnknownGroupIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["attention"] = testing::values_of(Kind::optimizer, "adamw");
  try {
    testing::plugins().create<Optimizer>("adamw", testing::values_of(Kind::optimizer, "adamw"), context);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("group 'attention', which the model does not have (its groups: embedding, head)"),
              std::string::npos) << e.what();
  }
}

TEST(AdamW, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("adamw", {{"weight_decay", 0.1}}, 5, 6));
}

}  // namespace
}  // namespace assay
