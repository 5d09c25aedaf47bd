#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

struct CeSetup {
  std::shared_ptr<Task> task;
  std::shared_ptr<Model> model;
  testing::MemoryRecorder recorder;
  std::shared_ptr<Algorithm> ce;
  CeSetup(const Values& ce_overrides, const Values& task_overrides = {}) {
    Context context;
    task = testing::plugins().create<Task>("modular_addition",
                                           testing::values_of(Kind::task, "modular_addition", task_overrides), context);
    model = testing::small_model(task->shape().vocab_size, 6);
    context.task = task.get();
    context.model = model.get();
    context.recorder = &recorder;
    ce = testing::plugins().create<Algorithm>("ce", testing::values_of(Kind::algorithm, "ce", ce_overrides), context);
  }
};

TEST(CrossEntropy, LossIsCrossEntropyPlusNormPenaltyInFloat64) {
  CeSetup s({{"norm_penalty", 0.01}}, {{"p", int64_t{5}}});
  auto out = s.ce->loss(1, 0, 1);
  // Reference: -mean log softmax(f)_y + lambda * sum_i ||(u_i, v_i, w_i)||^3, all in float64.
  auto batch = s.task->train_batch(1);
  auto logits = s.model->forward(batch.inputs).to(torch::kDouble);
  auto log_probs = logits - logits.exp().sum(1, true).log();
  const double ce = -log_probs.gather(1, batch.targets.unsqueeze(1)).mean().item<double>();
  auto p = s.model->named_parameters();
  double penalty = 0;
  for (int64_t i = 0; i < 6; ++i) {
    const double sq = (p["u"][i].to(torch::kDouble).square().sum() + p["v"][i].to(torch::kDouble).square().sum() +
                       p["w"][i].to(torch::kDouble).square().sum()).item<double>();
    penalty += std::pow(sq, 1.5);
  }
  EXPECT_NEAR(out.loss.item<double>(), ce + 0.01 * penalty, 1e-5);
  ASSERT_EQ(out.metrics.size(), 2u);
  EXPECT_NEAR(out.metrics[0].second, ce, 1e-5);
}

TEST(CrossEntropy, WeightedMicroBatchesAddUpToTheFullBatch) {
  CeSetup s({}, {{"p", int64_t{7}}});  // 49 examples: micro-batches of unequal size
  const double full = s.ce->loss(2, 0, 1).loss.item<double>();
  double total = 0, weights = 0;
  for (int micro = 0; micro < 3; ++micro) {
    auto out = s.ce->loss(2, micro, 3);
    total += out.loss.item<double>() * out.weight;
    weights += out.weight;
  }
  EXPECT_NEAR(weights, 1.0, 1e-12);
  EXPECT_NEAR(total, full, 1e-6);
}

TEST(CrossEntropy, EvaluateRecordsLossPerSplit) {
  CeSetup s({}, {{"p", int64_t{7}}, {"train_fraction", 0.5}});
  s.ce->evaluate(10);
  EXPECT_EQ(s.recorder.metrics.count("eval.train.loss"), 1u);
  EXPECT_EQ(s.recorder.metrics.count("eval.test.loss"), 1u);
  EXPECT_EQ(s.recorder.metrics["eval.test.loss"][0].first, 10);
}

}  // namespace
}  // namespace assay
