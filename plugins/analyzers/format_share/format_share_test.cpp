#include <assay/answer_details.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

// Echo problems (prompt t = j % 5, right answer t) whose one-token answers k fall into forms by prompt and
// answer (so that a completion judged with another prompt shows): "same" parity as t, "other" parity, k = 4
// in no form; no answer is "unused".
class FormStub : public testing::EchoTask, public AnswerDetails {
 public:
  std::vector<std::string> forms = {"same", "other", "unused"};
  std::vector<std::string> answer_forms() const override { return forms; }
  AnswerDetail answer_details(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    if (prompt.size() != 1 || completion.size() != 1 || completion[0] == 4) return {-1, {}};
    return {(completion[0] + prompt[0]) % 2, {}};
  }
};

// The policy: after prompt token t, the answer token is drawn from softmax(kLogits[t] / temperature).
const std::vector<std::vector<double>> kLogits = {{1.0, 0.2, 0.5, -0.3, 0.0},
                                                  {0.0, 1.2, 0.3, 0.8, -0.5},
                                                  {0.6, 0.0, 0.9, 0.1, 0.4},
                                                  {-0.2, 0.5, 0.0, 1.1, 0.7},
                                                  {0.3, 0.3, -0.4, 0.2, 1.0}};

// A bigram table [5, 5] (for testing::BigramModel) with these rows.
at::Tensor table(const std::vector<std::vector<double>>& logits) {
  auto out = torch::zeros({5, 5}, torch::kDouble);
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t k = 0; k < 5; ++k) out[t][k] = logits[static_cast<size_t>(t)][static_cast<size_t>(k)];
  }
  return out;
}

std::shared_ptr<Analyzer> analyzer(Task& task, Model& model, Recorder& recorder, const Values& overrides) {
  Context context;
  context.task = &task;
  context.model = &model;
  context.recorder = &recorder;
  return testing::plugins().create<Analyzer>("format_share", testing::values_of(Kind::analyzer, "format_share", overrides), context);
}

// Greedy answers 0, 3, 1, 3, 4 to prompts 0..4 (100 problems each): "same" parity 0 (right), 3 (wrong) and
// 3 (right); "other" 1 (wrong); none 4 (right).
TEST(FormatShare, GreedySharesAndAccuraciesAreExact) {
  FormStub task;
  testing::BigramModel model(table({{3, 0, 0, 0, 0}, {0, 0, 0, 3, 0}, {0, 3, 0, 0, 0}, {0, 0, 0, 3, 0}, {0, 0, 0, 0, 3}}));
  testing::MemoryRecorder recorder;
  analyzer(task, model, recorder, {})->on_eval(7);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.same.share"), 0.6);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.same.accuracy"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.other.share"), 0.2);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.other.accuracy"), 0.0);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.unused.share"), 0.0);
  EXPECT_FALSE(recorder.metrics.count("eval.test.format.unused.accuracy"));  // no completion to judge
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.none.share"), 0.2);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.format.none.accuracy"), 1.0);
  EXPECT_EQ(recorder.metrics.at("eval.test.format.same.share").front().first, 7);
  const auto& counts = recorder.rows.at("test.counts");
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].first, 7);
  EXPECT_TRUE(torch::equal(counts[0].second, torch::tensor({300, 200, 100, 0, 0, 0, 100, 100}, torch::kLong).view({4, 2})))
      << counts[0].second;
  // samples > 1 at temperature 0 repeat the greedy answer: the same shares, over sampler calls of 50 prompts.
  testing::MemoryRecorder repeated;
  analyzer(task, model, repeated, {{"samples", int64_t{3}}, {"batch", int64_t{150}}})->on_eval(8);
  EXPECT_TRUE(torch::equal(repeated.rows.at("test.counts")[0].second, 3 * counts[0].second)) << repeated.rows.at("test.counts")[0].second;
}

// Sampled: share(f) = mean_t sum_{k in f} p_t(k), accuracy(f) = mean_t [t in f] p_t(t) / share(f), with
// p_t = softmax(kLogits[t] / temperature). 500 problems x 16 samples: standard errors below 0.01. Shares and
// accuracies at temperatures 0.5 and 1 differ by more than 0.1, so the analyzer must sample at its temperature.
TEST(FormatShare, SampledSharesMatchTheClosedForm) {
  FormStub task;
  testing::BigramModel model(table(kLogits));
  for (double temperature : {0.5, 1.0}) {
    testing::MemoryRecorder recorder;
    // batch 48 = 3 prompts x 16 samples per sampler call: checks that chunks keep prompts and completions aligned.
    analyzer(task, model, recorder, {{"samples", int64_t{16}}, {"temperature", temperature}, {"batch", int64_t{48}}})->on_eval(0);
    std::vector<double> share(3, 0), right(3, 0);  // same, other, none
    for (size_t t = 0; t < 5; ++t) {
      auto p = (torch::tensor(kLogits[t], torch::kDouble) / temperature).softmax(0);
      for (size_t k = 0; k < 5; ++k) {
        const size_t form = k == 4 ? 2 : (k + t) % 2;
        share[form] += p[static_cast<int64_t>(k)].item<double>() / 5;
        if (k == t) right[form] += p[static_cast<int64_t>(k)].item<double>() / 5;
      }
    }
    const char* names[] = {"same", "other", "none"};
    for (size_t f = 0; f < 3; ++f) {
      const std::string name = std::string("eval.test.format.") + names[f];
      EXPECT_NEAR(recorder.last(name + ".share"), share[f], 0.03) << name << " at temperature " << temperature;
      EXPECT_NEAR(recorder.last(name + ".accuracy"), right[f] / share[f], 0.05) << name << " at temperature " << temperature;
    }
  }
}

void expect_rejected(Task& task, const std::string& fragment) {
  testing::BigramModel model(table(kLogits));
  testing::MemoryRecorder recorder;
  try {
    analyzer(task, model, recorder, {});
    FAIL() << "accepted; expected an error mentioning '" << fragment << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(FormatShare, RejectsTasksWithoutForms) {
  testing::EchoTask plain;
  expect_rejected(plain, "AnswerDetails");
  FormStub formless;
  formless.forms = {};
  expect_rejected(formless, "answer_forms");
  FormStub clashing;
  clashing.forms = {"code", "none"};
  expect_rejected(clashing, "\"none\"");
}

}  // namespace
}  // namespace assay
