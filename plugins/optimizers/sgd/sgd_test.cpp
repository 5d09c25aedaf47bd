#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>

#include "test_support.hpp"

namespace assay {
namespace {

const std::string kReference = ASSAY_SOURCE_DIR "/plugins/optimizers/sgd/sgd_reference.py";

TEST(Sgd, FollowsPyTorchsSgdWithMomentumAndWeightDecay) {
  const double diff = testing::max_difference_from_python(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.01}},
      "torch.optim.SGD(groups, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)", 12);
  EXPECT_LT(diff, 1e-6);
}

TEST(Sgd, NesterovFollowsPyTorch) {
  const double diff = testing::max_difference_from_python(
      "sgd", {{"lr", 0.05}, {"momentum", 0.5}, {"nesterov", true}},
      "torch.optim.SGD(groups, lr=0.05, momentum=0.5, nesterov=True)", 12);
  EXPECT_LT(diff, 1e-6);
}

TEST(Sgd, SaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("sgd", {{"momentum", 0.9}}, 4, 5));
}

TEST(Sgd, NesterovWithoutMomentumIsRefused) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  EXPECT_THROW(testing::plugins().create<Optimizer>("sgd", testing::values_of(Kind::optimizer, "sgd", {{"nesterov", true}}),
                                                    context),
               std::invalid_argument);
}

TEST(Sgd, DecoupledWeightDecayFollowsFloat64Sgdw) {
  // The paper's SGD: momentum 0.98, no dampening, decoupled weight decay.
  double movement = 0;
  const double diff = testing::max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.98}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 14, {},
      kReference, &movement);
  EXPECT_LT(diff, 2e-6);  // parameters reach ~2 in float32
  EXPECT_GT(movement, 0.1);
  std::cout << "sgdw: max |plugin - float64| = " << diff << ", movement " << movement << "\n";
}

TEST(Sgd, DecoupledWeightDecayWithNesterovDampeningOrNoMomentum) {
  const double nesterov = testing::max_difference_from_float64(
      "sgd",
      {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}},
      12, {}, kReference);
  const double dampening = testing::max_difference_from_float64(
      "sgd",
      {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.3}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}},
      12, {}, kReference);
  const double plain = testing::max_difference_from_float64(
      "sgd", {{"lr", 0.1}, {"weight_decay", 0.2}, {"decoupled_weight_decay", true}}, 12, {}, kReference);
  EXPECT_LT(nesterov, 1e-6);
  EXPECT_LT(dampening, 1e-6);
  EXPECT_LT(plain, 1e-6);
  std::cout << "sgdw nesterov " << nesterov << ", dampening " << dampening << ", no momentum " << plain << "\n";
}

TEST(Sgd, PerGroupDecayModesFollowFloat64) {
  // Decoupled for the embedding, torch's L2 for the head (with its own rate and decay).
  const double diff = testing::max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 12,
      {{"head", {{"decoupled_weight_decay", false}, {"weight_decay", 0.05}, {"lr", 0.02}}}}, kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "sgd per-group decay modes: max |plugin - float64| = " << diff << "\n";
}

TEST(Sgd, Float64ReferenceAgreesWithTheCoupledDefault) {  // the reference itself, on torch's L2 SGD
  const double diff = testing::max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.1}}, 12, {}, kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "coupled L2 default: max |plugin - float64| = " << diff << "\n";
}

TEST(Sgd, ReferenceComparisonNoticesTheDecayMode) {  // the plugin's SGDW replayed as L2 SGD
  const double diff = testing::max_difference_from_float64(
      "sgd", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.5}, {"decoupled_weight_decay", true}}, 12, {},
      kReference, nullptr, {{"decoupled_weight_decay", false}});
  EXPECT_GT(diff, 1e-3);
  std::cout << "sgdw replayed as L2: max difference " << diff << "\n";
}

TEST(Sgd, DecoupledSaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load(
      "sgd", {{"momentum", 0.98}, {"weight_decay", 0.1}, {"decoupled_weight_decay", true}}, 4, 5));
}

}  // namespace
}  // namespace assay
