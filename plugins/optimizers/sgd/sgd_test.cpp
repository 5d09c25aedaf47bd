#include <gtest/gtest.h>

#include "test_support.hpp"

namespace assay {
namespace {

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

}  // namespace
}  // namespace assay
