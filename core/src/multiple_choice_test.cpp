#include <assay/multiple_choice.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

using testing::BigramModel;
using Questions = testing::ChoiceStub;
constexpr int64_t kVocab = Questions::kVocab, kMarker = Questions::kMarker, kEos = Questions::kEos;
const std::vector<int64_t> kOptions = {2, 3, 4};

at::Tensor table() {
  auto t = torch::randn({kVocab, kVocab}, torch::kDouble) * 2;
  return t;
}

at::Tensor closed_form(const at::Tensor& table, int64_t token) {
  return table[token].index_select(0, torch::tensor(kOptions, torch::kLong)).softmax(0);
}

TEST(MultipleChoice, AnswerSlotAfterThePromptIsTheRenormalizedOptionSoftmax) {
  torch::manual_seed(0);
  auto t = table();
  BigramModel model(t);
  Questions task;
  auto answers = answer_choices(model, task, task.choice_questions("test", Perturbation::none));
  ASSERT_EQ(answers.probabilities.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::allclose(answers.probabilities[0], closed_form(t, 9), 1e-12, 0));  // last real token 9
  EXPECT_TRUE(torch::allclose(answers.probabilities[1], closed_form(t, 1), 1e-12, 0));  // padding ignored
  EXPECT_TRUE(torch::equal(answers.chosen, answers.probabilities.argmax(1)));
  EXPECT_TRUE(torch::equal(answers.implied, torch::tensor({-1, -1}, torch::kLong)));
  EXPECT_TRUE(task.implied_calls.empty());
}

TEST(MultipleChoice, GreedyReasoningThenTheMarkerThenTheAnswerSlot) {
  // From 9 the greedy chain is 9 -> 6 -> marker (the reasoning "6" implies option 1); from 1 it is
  // 1 -> 5 -> 5 -> 5 without a marker: three tokens, then the marker is forced.
  auto t = torch::zeros({kVocab, kVocab}, torch::kDouble);
  t[9][6] = 5;
  t[6][kMarker] = 5;
  t[1][5] = 5;
  t[5][5] = 5;
  t[kMarker][2] = 1;
  t[kMarker][3] = 2;
  BigramModel model(t);
  Questions task;
  task.reasoning = true;
  auto answers = answer_choices(model, task, task.choice_questions("test", Perturbation::none), /*batch=*/1);
  ASSERT_EQ(task.implied_calls.size(), 2u);
  EXPECT_EQ(task.implied_calls[0].first, (std::vector<int64_t>{0, 1, 9}));
  EXPECT_EQ(task.implied_calls[0].second, (std::vector<int64_t>{6}));
  EXPECT_EQ(task.implied_calls[1].first, (std::vector<int64_t>{1}));
  EXPECT_EQ(task.implied_calls[1].second, (std::vector<int64_t>{5, 5, 5}));
  EXPECT_TRUE(torch::equal(answers.implied, torch::tensor({1, 0}, torch::kLong)));
  for (int64_t q = 0; q < 2; ++q) EXPECT_TRUE(torch::allclose(answers.probabilities[q], closed_form(t, kMarker), 1e-12, 0));
}

TEST(MultipleChoice, PaddedBatchesMatchEachQuestionAlone) {
  Context context;
  context.task_shape = {kVocab, kVocab, 16};
  torch::manual_seed(3);
  auto gpt = testing::plugins().create<Model>("gpt", testing::values_of(Kind::model, "gpt", {{"width", int64_t{16}}, {"heads", int64_t{2}}}),
                                              context);
  gpt->to(torch::kDouble);
  Questions task;
  auto answers = answer_choices(*gpt, task, task.choice_questions("test", Perturbation::none));
  torch::NoGradGuard no_grad;
  gpt->eval();
  for (auto [row, prompt] : {std::pair{0, std::vector<int64_t>{0, 1, 9}}, std::pair{1, std::vector<int64_t>{1}}}) {
    auto logits = gpt->forward(torch::tensor(prompt, torch::kLong).unsqueeze(0))[0][-1];
    auto expected = logits.index_select(0, torch::tensor(kOptions, torch::kLong)).softmax(0);
    EXPECT_TRUE(torch::allclose(answers.probabilities[row], expected, 1e-10, 0)) << row;
  }
}

TEST(MultipleChoice, BadFormatsAreRefused) {
  BigramModel model(table());
  struct NoOptions : Questions {
    ChoiceFormat choice_format() const override { return {}; }
  } none;
  EXPECT_THROW(answer_choices(model, none, none.choice_questions("test", Perturbation::none)), std::invalid_argument);
  struct OutOfRange : Questions {
    ChoiceFormat choice_format() const override { return {{2, kVocab}, {"a", "b"}, -1, {kEos}, 0}; }
  } outside;
  EXPECT_THROW(answer_choices(model, outside, outside.choice_questions("test", Perturbation::none)), std::invalid_argument);
  struct NoMarker : Questions {
    ChoiceQuestions choice_questions(std::string_view s, Perturbation p) override {
      auto q = Questions::choice_questions(s, p);
      q.at_answer_slot = false;  // reasoning expected, but the format has no marker
      return q;
    }
  } unmarked;
  EXPECT_THROW(answer_choices(model, unmarked, unmarked.choice_questions("test", Perturbation::none)), std::invalid_argument);
  EXPECT_EQ(perturbation_from_name("wrong_reasoning"), Perturbation::wrong_reasoning);
  EXPECT_EQ(perturbation_name(Perturbation::misleading_hint), "misleading_hint");
  EXPECT_THROW(perturbation_from_name("typo"), std::invalid_argument);
}

}  // namespace
}  // namespace assay
