#include <gtest/gtest.h>

#include <torch/torch.h>

#include <iostream>

#include "test_support.hpp"

namespace assay {
namespace {

// Python expression constructing lion_reference.Lion (float64, from the formulas) from this folder,
// without leaving __pycache__ behind in the source tree.
std::string reference(const std::string& arguments) {
  return "(setattr(sys, 'dont_write_bytecode', True), sys.path.insert(0, '" ASSAY_SOURCE_DIR
         "/plugins/optimizers/lion'), __import__('lion_reference'))[2].Lion(" + arguments + ")";
}

// Tolerance: the plugin keeps p and m in float32 and rounds p up to three times per step (the float32
// decay factor, the decayed p, p - lr * u), the reference once from float64: at most ~2 ulp(p) of new
// difference per step, and it is never amplified (the update +-lr does not depend on p; m, which decides
// the sign, differs only by float32 rounding). |p| < 1 here (ulp <= 6e-8), so 16 steps stay below
// 32 ulp = 1.9e-6; observed ~1e-7. A sign that flipped (m near 0) would cost 2 * lr = 2e-2, a formula
// error (decay or beta in the wrong place) ~1e-2.
constexpr double kTolerance = 2e-6;
constexpr int kSteps = 16;

TEST(Lion, FollowsFloat64Reference) {
  const double diff = testing::max_difference_from_python(
      "lion", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"weight_decay", 0.1}},
      reference("groups, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1"), kSteps);
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kTolerance);
}

TEST(Lion, DefaultsAreLionsOwn) {
  // Only lr is set: the plugin's defaults must be betas (0.9, 0.99) and no weight decay.
  const double diff = testing::max_difference_from_python(
      "lion", {{"lr", 0.01}}, reference("groups, lr=0.01, betas=(0.9, 0.99), weight_decay=0.0"), kSteps);
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kTolerance);
}

TEST(Lion, PerGroupOptionsFollowReferenceParamGroups) {
  const double diff = testing::max_difference_from_python(
      "lion", {{"lr", 0.01}, {"weight_decay", 0.1}},
      reference("[groups[0], dict(groups[1], lr=0.05, betas=(0.5, 0.99), weight_decay=0.0)], lr=0.01, "
                "weight_decay=0.1"),
      kSteps, {{"head", {{"lr", 0.05}, {"beta1", 0.5}, {"weight_decay", 0.0}}}});
  std::cout << "max |plugin - reference| = " << diff << "\n";
  EXPECT_LT(diff, kTolerance);
}

TEST(Lion, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("lion", {{"lr", 0.01}, {"weight_decay", 0.1}}, 5, 7));
}

TEST(Lion, ZeroGradientMovesNothingAndParamsWithoutGradAreSkipped) {
  // sign(0) = 0: a zero gradient on fresh state gives a zero update (torch.sign, np.sign agree).
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  auto optimizer = testing::plugins().create<Optimizer>("lion", testing::values_of(Kind::optimizer, "lion", {{"lr", 0.1}}),
                                                        context);
  auto params = model->parameters();
  std::vector<at::Tensor> before;
  for (auto& p : params) before.push_back(p.detach().clone());
  params[0].mutable_grad() = torch::zeros_like(params[0]);  // the others have no grad
  optimizer->step();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i])) << i;
}

TEST(Lion, LrIsTheFirstGroupsScaledLr) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["head"] = testing::values_of(Kind::optimizer, "lion", {{"lr", 0.5}});
  auto optimizer = testing::plugins().create<Optimizer>("lion", testing::values_of(Kind::optimizer, "lion", {{"lr", 0.02}}),
                                                        context);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.02);
  optimizer->set_lr_factor(0.25);
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.005);
}

TEST(Lion, UnknownGroupIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  context.group_values["attention"] = testing::values_of(Kind::optimizer, "lion");
  EXPECT_THROW(testing::plugins().create<Optimizer>("lion", testing::values_of(Kind::optimizer, "lion"), context),
               std::invalid_argument);
}

}  // namespace
}  // namespace assay
