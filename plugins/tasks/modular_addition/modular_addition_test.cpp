#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Task> task(const Values& overrides, uint64_t seed = 0) {
  Context context;
  context.seed = seed;
  return testing::plugins().create<Task>("modular_addition",
                                         testing::values_of(Kind::task, "modular_addition", overrides), context);
}

TEST(ModularAddition, FullDatasetHasEveryPairWithItsSum) {
  auto t = task({{"p", int64_t{7}}});
  EXPECT_EQ(t->eval_splits(), std::vector<std::string>{"train"});
  auto batch = t->train_batch(0);
  ASSERT_EQ(batch.inputs.size(0), 49);
  auto a = batch.inputs.select(1, 0), b = batch.inputs.select(1, 1);
  EXPECT_TRUE(torch::equal(batch.targets, (a + b) % 7));
  EXPECT_EQ(std::get<0>(at::_unique(a * 7 + b)).size(0), 49);
}

TEST(ModularAddition, SplitIsAPartitionFixedBySeed) {
  auto t = task({{"p", int64_t{11}}, {"train_fraction", 0.3}}, 5);
  auto train = t->eval_batch("train"), test = t->eval_batch("test");
  EXPECT_EQ(train.inputs.size(0), 36);  // round(0.3 * 121)
  EXPECT_EQ(train.inputs.size(0) + test.inputs.size(0), 121);
  auto key = [](const Batch& b) { return b.inputs.select(1, 0) * 11 + b.inputs.select(1, 1); };
  EXPECT_EQ(std::get<0>(at::_unique(torch::cat({key(train), key(test)}))).size(0), 121);
  EXPECT_TRUE(torch::equal(task({{"p", int64_t{11}}, {"train_fraction", 0.3}}, 5)->eval_batch("train").inputs, train.inputs));
  EXPECT_FALSE(torch::equal(task({{"p", int64_t{11}}, {"train_fraction", 0.3}}, 6)->eval_batch("train").inputs, train.inputs));
  EXPECT_THROW(t->eval_batch("ood"), std::invalid_argument);
}

TEST(ModularAddition, MinibatchesArePureFunctionsOfSeedAndStep) {
  auto t = task({{"batch_size", int64_t{16}}});
  auto first = t->train_batch(3);
  t->train_batch(4);
  EXPECT_TRUE(torch::equal(t->train_batch(3).inputs, first.inputs));
  EXPECT_FALSE(torch::equal(t->train_batch(4).inputs, first.inputs));
  EXPECT_EQ(first.inputs.size(0), 16);
}

}  // namespace
}  // namespace assay
