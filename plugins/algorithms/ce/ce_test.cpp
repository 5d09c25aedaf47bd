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
  ASSERT_EQ(out.tensor_metrics.size(), 2u);  // tensors: no host sync inside the step (CUDA graphs)
  EXPECT_EQ(out.tensor_metrics[0].first, "ce");
  EXPECT_NEAR(out.tensor_metrics[0].second.item<double>(), ce, 1e-5);
  EXPECT_EQ(out.tensor_metrics[1].first, "norm_penalty");
  EXPECT_NEAR(out.tensor_metrics[1].second.item<double>(), 0.01 * penalty, 1e-5);
}

TEST(CrossEntropy, NormPenaltyOfDegreeFourValueAndGradientInFloat64) {
  // The sparse-parity setting: polynomial_mlp of degree 3 (homogeneity 4) with lambda * sum_i ||theta_i||^4.
  Context context;
  auto task = testing::plugins().create<Task>("sparse_parity", testing::values_of(Kind::task, "sparse_parity", {{"n", int64_t{6}}}), context);
  context.task_shape = task->shape();
  torch::manual_seed(5);
  auto model = testing::plugins().create<Model>("polynomial_mlp", testing::values_of(Kind::model, "polynomial_mlp",
                                                {{"width", int64_t{5}}, {"init_std", 0.3}}), context);
  testing::MemoryRecorder recorder;
  context.task = task.get();
  context.model = model.get();
  context.recorder = &recorder;
  const double lambda = 0.05;
  auto gradients = [&](double penalty) {
    auto ce = testing::plugins().create<Algorithm>("ce", testing::values_of(Kind::algorithm, "ce",
                                                   {{"norm_penalty", penalty}, {"norm_power", int64_t{4}}}), context);
    model->zero_grad();
    auto out = ce->loss(0, 0, 1);
    out.loss.backward();
    auto p = model->named_parameters();
    return std::make_tuple(out.loss.item<double>(), p["u"].grad().to(torch::kDouble).clone(), p["w"].grad().to(torch::kDouble).clone());
  };
  auto [loss, grad_u, grad_w] = gradients(lambda);
  auto [plain_loss, plain_u, plain_w] = gradients(0);
  // Reference in float64: -mean log softmax(f)_y + lambda * sum_i (||u_i||^2 + ||w_i||^2)^2, f = (x u^T)^3 w.
  auto p = model->named_parameters();
  auto u = p["u"].detach().to(torch::kDouble).requires_grad_(true), w = p["w"].detach().to(torch::kDouble).requires_grad_(true);
  auto batch = task->train_batch(0);
  auto x = batch.inputs.to(torch::kDouble) * 2 - 1;
  auto logits = x.matmul(u.t()).pow(3).matmul(w);
  auto ce = -(logits - logits.exp().sum(1, true).log()).gather(1, batch.targets.unsqueeze(1)).mean();
  auto squared = u.square().sum(1) + w.square().sum(1);
  auto reference = ce + lambda * squared.square().sum();
  reference.backward();
  EXPECT_NEAR(loss, reference.item<double>(), 1e-5);
  EXPECT_NEAR(plain_loss, ce.item<double>(), 1e-5);
  EXPECT_TRUE(torch::allclose(grad_u, u.grad(), 1e-4, 1e-6)) << grad_u - u.grad();
  EXPECT_TRUE(torch::allclose(grad_w, w.grad(), 1e-4, 1e-6)) << grad_w - w.grad();
  // The penalty's own gradient in closed form: d/dtheta_i lambda ||theta_i||^4 = 4 lambda ||theta_i||^2 theta_i.
  auto scale = (4 * lambda * squared.detach()).unsqueeze(1);
  EXPECT_TRUE(torch::allclose(grad_u - plain_u, scale * u.detach(), 1e-4, 1e-7));
  EXPECT_TRUE(torch::allclose(grad_w - plain_w, scale * w.detach(), 1e-4, 1e-7));
  EXPECT_GT((scale * u.detach()).abs().max().item<double>(), 1e-3);  // the penalty moves the gradient visibly
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
