#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

using testing::ChoiceStub;

std::shared_ptr<Analyzer> analyzer(ChoiceStub& task, Model& model, Recorder& recorder, const Values& overrides) {
  Context context;
  context.task = &task;
  context.model = &model;
  context.recorder = &recorder;
  return testing::plugins().create<Analyzer>("perturbation_robustness",
                                             testing::values_of(Kind::analyzer, "perturbation_robustness", overrides), context);
}

std::vector<double> softmax(std::vector<double> logits) {
  double sum = 0;
  for (double& x : logits) sum += (x = std::exp(x));
  for (double& x : logits) x /= sum;
  return logits;
}

// Without reasoning: question 0 (last token 9) favours option 0 and question 1 (token 1) option 2, both
// right; the hint token 5 makes both choose option 1, which question 0's hint names and question 1's does not.
TEST(PerturbationRobustness, HintMetricsMatchHandComputedValues) {
  ChoiceStub task;
  testing::BigramModel model(torch::zeros({ChoiceStub::kVocab, ChoiceStub::kVocab}, torch::kDouble));
  model.table[9][2] = 2;
  model.table[1][4] = 2;
  model.table[5][3] = 3;
  testing::MemoryRecorder recorder;
  EXPECT_THROW(analyzer(task, model, recorder, {}), std::invalid_argument);  // wrong_reasoning needs reasoning
  analyzer(task, model, recorder, {{"perturbations", std::vector<std::string>{"misleading_hint"}}})->on_eval(5);
  const double strong = softmax({2, 0, 0})[0];
  const auto hinted = softmax({0, 3, 0});
  EXPECT_NEAR(recorder.last("eval.test.none.accuracy"), 1.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.none.correct_mass"), strong, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.accuracy"), 0.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.delta_accuracy"), -1.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.correct_mass"), (hinted[0] + hinted[2]) / 2, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.delta_correct_mass"), (hinted[0] + hinted[2]) / 2 - strong, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.flip_rate"), 1.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.follows_misleading"), 0.5, 1e-12);
  EXPECT_FALSE(recorder.metrics.count("eval.test.none.consistency"));  // no reasoning written
  EXPECT_EQ(recorder.metrics.at("eval.test.none.accuracy").front().first, 5);
}

// With reasoning: from 9 the model reasons "6" (implies option 1) then the marker; from 1 it writes the
// marker at once (no reasoning: implies nothing). At the marker it prefers option 1, so question 0 is
// consistent with its reasoning. The given wrong reasoning also ends at the marker.
TEST(PerturbationRobustness, ReasoningConsistency) {
  ChoiceStub task;
  task.reasoning = true;
  testing::BigramModel model(torch::zeros({ChoiceStub::kVocab, ChoiceStub::kVocab}, torch::kDouble));
  model.table[9][6] = 5;
  model.table[6][ChoiceStub::kMarker] = 5;
  model.table[1][ChoiceStub::kMarker] = 5;
  model.table[ChoiceStub::kHint][ChoiceStub::kMarker] = 5;
  model.table[ChoiceStub::kMarker][3] = 2;
  testing::MemoryRecorder recorder;
  analyzer(task, model, recorder, {})->on_eval(0);
  EXPECT_NEAR(recorder.last("eval.test.none.accuracy"), 0.0, 1e-12);  // option 1 is right for neither
  EXPECT_NEAR(recorder.last("eval.test.none.reasoning_valid"), 0.5, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.none.consistency"), 1.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.misleading_hint.reasoning_valid"), 0.0, 1e-12);
  EXPECT_FALSE(recorder.metrics.count("eval.test.misleading_hint.consistency"));
  EXPECT_NEAR(recorder.last("eval.test.wrong_reasoning.flip_rate"), 0.0, 1e-12);
  EXPECT_NEAR(recorder.last("eval.test.wrong_reasoning.follows_misleading"), 0.5, 1e-12);  // misleading = {1, 0}
  EXPECT_FALSE(recorder.metrics.count("eval.test.wrong_reasoning.reasoning_valid"));  // the reasoning was given
}

}  // namespace
}  // namespace assay
