#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include "test_support.hpp"

namespace assay {
namespace {

using testing::ChoiceStub;

// Four questions answered at the prompt's last token, with option distributions set through the bigram's
// logits (log-probabilities): right with confidence 0.72 and 0.83, wrong with 0.55 and 0.64
// (away from the bins' edges, where rounding could move a question across).
struct Fixture {
  ChoiceStub task;
  testing::BigramModel model{torch::zeros({ChoiceStub::kVocab, ChoiceStub::kVocab}, torch::kDouble)};
  testing::MemoryRecorder recorder;
  const std::vector<std::vector<double>> p = {{0.72, 0.18, 0.10}, {0.55, 0.30, 0.15}, {0.07, 0.83, 0.10}, {0.64, 0.26, 0.10}};
  Fixture() {
    task.prompts = {{9}, {1}, {0}, {6}};
    task.correct = {0, 2, 1, 1};
    task.misleading = {1, 0, 0, 0};
    const std::vector<int64_t> last = {9, 1, 0, 6};
    for (size_t q = 0; q < 4; ++q) {
      for (int64_t o = 0; o < 3; ++o) model.table[last[q]][2 + o] = std::log(p[q][static_cast<size_t>(o)]);
      for (int64_t t : {0, 1, 5, 6, 7, 8, 9}) model.table[last[q]][t] = 50;  // other tokens do not matter
    }
  }
  std::shared_ptr<Analyzer> analyzer(const Values& overrides) {
    Context context;
    context.task = &task;
    context.model = &model;
    context.recorder = &recorder;
    return testing::plugins().create<Analyzer>("calibration", testing::values_of(Kind::analyzer, "calibration", overrides), context);
  }
};

TEST(Calibration, MatchesHandComputedValues) {
  for (int64_t bins : {10, 2}) {
    Fixture f;
    f.analyzer({{"bins", bins}})->on_eval(3);
    const auto& m = f.recorder;
    EXPECT_NEAR(m.last("eval.test.choice.accuracy"), 0.5, 1e-12);
    EXPECT_NEAR(m.last("eval.test.choice.correct_mass"), (0.72 + 0.15 + 0.83 + 0.26) / 4, 1e-12);
    EXPECT_NEAR(m.last("eval.test.choice.confidence"), (0.72 + 0.55 + 0.83 + 0.64) / 4, 1e-12);
    double entropy = 0;
    for (const auto& row : f.p) {
      for (double x : row) entropy -= x * std::log(x) / 4;
    }
    EXPECT_NEAR(m.last("eval.test.choice.entropy"), entropy, 1e-12);
    EXPECT_NEAR(m.last("eval.test.choice.normalized_entropy"), entropy / std::log(3.0), 1e-12);
    // 10 bins: each question alone, |1-.72| + |0-.55| + |1-.83| + |0-.64| over 4. 2 bins: all in [.5, 1]
    // (accuracy .5, confidence .685).
    EXPECT_NEAR(m.last("eval.test.choice.ece"), bins == 10 ? (0.28 + 0.55 + 0.17 + 0.64) / 4 : 0.685 - 0.5, 1e-12) << bins;
    ASSERT_EQ(m.rows.at("test.probabilities").size(), 1u);
    EXPECT_EQ(m.rows.at("test.probabilities")[0].first, 3);
    std::vector<double> flat;
    for (const auto& row : f.p) flat.insert(flat.end(), row.begin(), row.end());
    EXPECT_TRUE(torch::allclose(m.rows.at("test.probabilities")[0].second, torch::tensor(flat, torch::kDouble).view({4, 3}), 1e-12, 0));
    EXPECT_TRUE(torch::equal(m.rows.at("test.correct")[0].second, torch::tensor({0, 2, 1, 1}, torch::kLong)));
  }
}

TEST(Calibration, QuestionsWithoutARightOptionAreLeftOut) {
  Fixture f;
  f.task.correct = {0, -1, -1, 1};  // only the first (right, .72) and last (wrong, .64) count
  f.analyzer({})->on_eval(0);
  EXPECT_NEAR(f.recorder.last("eval.test.choice.accuracy"), 0.5, 1e-12);
  EXPECT_NEAR(f.recorder.last("eval.test.choice.ece"), (0.28 + 0.64) / 2, 1e-12);
  Fixture none;
  none.task.correct = {-1, -1, -1, -1};
  none.analyzer({})->on_eval(0);
  EXPECT_FALSE(none.recorder.metrics.count("eval.test.choice.accuracy"));
  EXPECT_EQ(none.recorder.rows.at("test.probabilities").size(), 1u);
}

TEST(Calibration, RefusesATaskThatIsNotMultipleChoice) {
  testing::EchoTask echo;
  testing::BigramModel model(torch::zeros({5, 5}));
  testing::MemoryRecorder recorder;
  Context context;
  context.task = &echo;
  context.model = &model;
  context.recorder = &recorder;
  try {
    testing::plugins().create<Analyzer>("calibration", testing::values_of(Kind::analyzer, "calibration"), context);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple-choice"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace assay
