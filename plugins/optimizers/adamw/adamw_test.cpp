#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>

#include "test_support.hpp"

namespace assay {
namespace {

const std::string kReference = ASSAY_SOURCE_DIR "/plugins/optimizers/adamw/adamw_reference.py";

TEST(AdamW, FollowsPyTorchsAdamW) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-6}, {"weight_decay", 0.1}},
      "torch.optim.AdamW(groups, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)", 12);
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, FusedFollowsPyTorchsFusedAdamW) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-6}, {"weight_decay", 0.1}, {"implementation", "fused"}},
      "torch.optim.AdamW(groups, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, fused=True)", 12);
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, FusedAmsgradPerGroupFollowsPyTorch) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.01}, {"weight_decay", 0.1}, {"amsgrad", true}, {"implementation", "fused"}},
      "torch.optim.AdamW([groups[0], dict(groups[1], lr=0.05, weight_decay=0.0)], lr=0.01, weight_decay=0.1, "
      "amsgrad=True, fused=True)",
      8, {{"head", {{"lr", 0.05}, {"weight_decay", 0.0}}}});
  EXPECT_LT(diff, 2e-6);
}

TEST(AdamW, FusedModesFollowFloat64Reference) {
  // The plugin's own decay modes (per group) around the fused step.
  const double diff = testing::max_difference_from_float64(
      "adamw", {{"lr", 0.01}, {"weight_decay", 0.1}, {"amsgrad", true}, {"implementation", "fused"}}, 12,
      {{"embedding", {{"weight_decay_mode", "independent"}, {"weight_decay", 0.02}}},
       {"head", {{"weight_decay_mode", "l2"}, {"lr", 0.02}}}},
      kReference);
  EXPECT_LT(diff, 1e-6);
}

TEST(AdamW, FusedSaveLoadContinuesBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load("adamw", {{"weight_decay", 0.1}, {"implementation", "fused"}}, 5, 6));
  EXPECT_TRUE(testing::continues_identically_after_load(
      "adamw", {{"amsgrad", true}, {"weight_decay_mode", "l2"}, {"weight_decay", 0.1}, {"implementation", "fused"}}, 5, 6));
}

TEST(AdamW, CheckpointOfTheOtherImplementationIsRefused) {
  auto model = testing::small_model(5, 4);
  auto loop = testing::make_optimizer("adamw", {{"implementation", "loop"}}, *model);
  auto fused = testing::make_optimizer("adamw", {{"implementation", "fused"}}, *model);
  torch::serialize::OutputArchive out;
  loop->save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  std::istringstream in_bytes(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(in_bytes);
  try {
    fused->load(in);
    FAIL() << "a loop checkpoint loaded into the fused implementation";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("set implementation to match"), std::string::npos) << e.what();
  }
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

TEST(AdamW, L2ModeFollowsPyTorchsAdam) {
  const double diff = testing::max_difference_from_python(
      "adamw",
      {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-6}, {"weight_decay", 0.1},
       {"weight_decay_mode", "l2"}},
      "torch.optim.Adam(groups, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)", 12);
  EXPECT_LT(diff, 2e-6);
  std::cout << "l2 vs torch.optim.Adam: max difference " << diff << "\n";
}

TEST(AdamW, L2ModeWithAmsgradFollowsPyTorchsAdam) {
  const double diff = testing::max_difference_from_python(
      "adamw", {{"lr", 0.003}, {"amsgrad", true}, {"weight_decay", 0.5}, {"weight_decay_mode", "l2"}},
      "torch.optim.Adam(groups, lr=0.003, amsgrad=True, weight_decay=0.5)", 12);
  EXPECT_LT(diff, 2e-6);
  std::cout << "l2 + amsgrad vs torch.optim.Adam: max difference " << diff << "\n";
}

TEST(AdamW, IndependentModeFollowsFloat64Reference) {
  // The paper's Adam: betas (0.9, 0.95), eps 1e-15, p <- p (1 - wd) per step.
  double movement = 0;
  const double diff = testing::max_difference_from_float64(
      "adamw",
      {{"lr", 0.01}, {"beta2", 0.95}, {"eps", 1e-15}, {"weight_decay", 0.02}, {"weight_decay_mode", "independent"}},
      14, {}, kReference, &movement);
  EXPECT_LT(diff, 1e-6);
  EXPECT_GT(movement, 0.05);
  std::cout << "independent: max |plugin - float64| = " << diff << ", movement " << movement << "\n";
}

TEST(AdamW, PerGroupModesFollowFloat64Reference) {
  const double diff = testing::max_difference_from_float64(
      "adamw", {{"lr", 0.01}, {"weight_decay", 0.1}, {"amsgrad", true}}, 12,
      {{"embedding", {{"weight_decay_mode", "independent"}, {"weight_decay", 0.02}}},
       {"head", {{"weight_decay_mode", "l2"}, {"lr", 0.02}}}},
      kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "per-group independent / l2: max |plugin - float64| = " << diff << "\n";
}

TEST(AdamW, Float64ReferenceAgreesWithTheDecoupledDefault) {  // the reference itself, on torch's AdamW
  const double diff = testing::max_difference_from_float64(
      "adamw", {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.95}, {"eps", 1e-6}, {"weight_decay", 0.1}}, 12, {},
      kReference);
  EXPECT_LT(diff, 1e-6);
  std::cout << "decoupled default: max |plugin - float64| = " << diff << "\n";
}

TEST(AdamW, ReferenceComparisonNoticesTheDecayMode) {
  const Values options{{"lr", 0.01}, {"weight_decay", 0.05}, {"weight_decay_mode", "independent"}};
  const double as_decoupled =
      testing::max_difference_from_float64("adamw", options, 12, {}, kReference, nullptr, {{"weight_decay_mode", "decoupled"}});
  const double as_l2 =
      testing::max_difference_from_float64("adamw", options, 12, {}, kReference, nullptr, {{"weight_decay_mode", "l2"}});
  EXPECT_GT(as_decoupled, 1e-3);
  EXPECT_GT(as_l2, 1e-3);
  std::cout << "independent replayed as decoupled " << as_decoupled << ", as l2 " << as_l2 << "\n";
}

TEST(AdamW, L2ModeLeavesTheGradientsAsTheyWere) {
  auto model = testing::small_model(5, 4);
  Context context;
  context.model = model.get();
  auto optimizer = testing::plugins().create<Optimizer>(
      "adamw", testing::values_of(Kind::optimizer, "adamw", {{"weight_decay", 0.5}, {"weight_decay_mode", "l2"}}),
      context);
  std::vector<at::Tensor> grads;
  for (auto& p : model->parameters()) {
    grads.push_back(torch::randn(p.sizes()));
    p.mutable_grad() = grads.back();
  }
  optimizer->step();
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].grad().is_same(grads[i]));
    EXPECT_TRUE(torch::equal(params[i].grad(), grads[i]));
  }
}

TEST(AdamW, NewModesSaveLoadContinueBitIdentically) {
  EXPECT_TRUE(testing::continues_identically_after_load(
      "adamw", {{"weight_decay", 0.05}, {"weight_decay_mode", "independent"}}, 5, 6));
  EXPECT_TRUE(testing::continues_identically_after_load("adamw", {{"weight_decay", 0.1}, {"weight_decay_mode", "l2"}},
                                                        5, 6));
}

}  // namespace
}  // namespace assay
