#include <assay/multiple_choice.hpp>
#include <assay/sequences.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <set>
#include <sstream>

#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Task> task(const Values& overrides = {}, uint64_t seed = 0) {
  Context context;
  context.seed = seed;
  return testing::plugins().create<Task>("arithmetic_choice", testing::values_of(Kind::task, "arithmetic_choice", overrides), context);
}

MultipleChoice& choices(Task& t) { return dynamic_cast<MultipleChoice&>(t); }

// The documented vocabulary for modulus m and n options.
Vocabulary vocabulary(int64_t m, int64_t n) {
  std::vector<std::string> symbols;
  for (int64_t v = 0; v < m; ++v) symbols.push_back(std::to_string(v));
  for (const char* s : {"+", "?", "hint", "=>", "SoS", "EoS", "PAD"}) symbols.emplace_back(s);
  for (int64_t o = 0; o < n; ++o) symbols.emplace_back(1, static_cast<char>('A' + o));
  return Vocabulary(symbols);
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// A decoded question "SoS a + b + c ? A v B v ... [hint X]" checked against the arithmetic.
struct Parsed {
  std::vector<int64_t> operands, values;
  std::string hint;
  int64_t answer = 0;
};

Parsed parse(const std::vector<std::string>& w, int64_t m, int64_t terms, int64_t n) {
  Parsed p;
  size_t i = 0;
  EXPECT_EQ(w[i++], "SoS");
  for (int64_t t = 0; t < terms; ++t) {
    if (t > 0) EXPECT_EQ(w[i++], "+");
    p.operands.push_back(std::stoll(w[i++]));
  }
  EXPECT_EQ(w[i++], "?");
  for (int64_t o = 0; o < n; ++o) {
    EXPECT_EQ(w[i++], std::string(1, static_cast<char>('A' + o)));
    p.values.push_back(std::stoll(w[i++]));
  }
  if (i < w.size() && w[i] == "hint") p.hint = w[i + 1];
  for (auto v : p.operands) p.answer += v;
  p.answer %= m;
  return p;
}

TEST(ArithmeticChoice, TrainingExamplesFollowTheLayoutAndTheArithmetic) {
  const int64_t m = 11, terms = 3, n = 4;
  auto t = task({{"modulus", m}, {"terms", terms}, {"options", n}, {"eval_size", int64_t{40}}});
  auto vocab = vocabulary(m, n);
  EXPECT_EQ(t->shape().vocab_size, vocab.size());
  auto key = [](const Parsed& p) {
    auto k = p.operands;
    k.insert(k.end(), p.values.begin(), p.values.end());
    return k;
  };
  std::set<std::vector<int64_t>> test_questions;
  auto prompts = t->eval_prompts("test");
  for (int64_t q = 0; q < prompts.tokens.size(0); ++q) {
    auto w = words(vocab.decode(prompts.tokens[q].narrow(0, 0, prompts.lengths[q].item<int64_t>())));
    test_questions.insert(key(parse(w, m, terms, n)));
  }
  EXPECT_EQ(test_questions.size(), 40u);  // distinct
  std::set<std::vector<int64_t>> trained_operands;
  std::vector<int64_t> position_counts(n, 0);
  for (int64_t step = 0; step < 20; ++step) {
    auto batch = t->train_batch(step);
    for (int64_t b = 0; b < batch.inputs.size(0); ++b) {
      auto row = batch.inputs[b];
      auto targets = batch.targets[b];
      // inputs + the last target = the whole sequence; only the answer is scored.
      const int64_t last = (targets != -100).nonzero().max().item<int64_t>();
      auto sequence = torch::cat({row.narrow(0, 0, last + 1), targets.narrow(0, last, 1)});
      auto w = words(vocab.decode(sequence));
      Parsed p = parse(w, m, terms, n);
      EXPECT_FALSE(test_questions.count(key(p))) << "a test question in training";
      trained_operands.insert(p.operands);
      EXPECT_EQ(std::set<int64_t>(p.values.begin(), p.values.end()).size(), static_cast<size_t>(n)) << "distinct options";
      const auto right = std::find(p.values.begin(), p.values.end(), p.answer) - p.values.begin();
      ASSERT_LT(right, n);
      ++position_counts[right];
      const std::string letter(1, static_cast<char>('A' + right));
      const int64_t s1 = (p.operands[0] + p.operands[1]) % m;
      std::vector<std::string> answer(w.end() - 5, w.end());
      EXPECT_EQ(answer, (std::vector<std::string>{std::to_string(s1), std::to_string(p.answer), "=>", letter, "EoS"}));
      EXPECT_EQ((targets != -100).sum().item<int64_t>(), 5);
    }
  }
  for (auto c : position_counts) EXPECT_GT(c, 20 * 64 / n / 2);  // the right option's position is spread
  EXPECT_GT(trained_operands.size(), 11u * 11 * 11 * 6 / 10);      // the sums themselves are all trained
}

TEST(ArithmeticChoice, HintsHaveTheConfiguredRateAndAccuracy) {
  const int64_t m = 23, n = 4;
  auto t = task({{"modulus", m}, {"options", n}, {"hint_rate", 0.4}, {"hint_accuracy", 0.25}, {"batch_size", int64_t{500}}});
  auto vocab = vocabulary(m, n);
  double hinted = 0, right = 0, total = 0;
  for (int64_t step = 0; step < 8; ++step) {
    auto prompts = t->train_prompts(step, 500);
    for (int64_t q = 0; q < 500; ++q) {
      Parsed p = parse(words(vocab.decode(prompts.tokens[q].narrow(0, 0, prompts.lengths[q].item<int64_t>()))), m, 3, n);
      total += 1;
      if (p.hint.empty()) continue;
      hinted += 1;
      right += p.values[static_cast<size_t>(p.hint[0] - 'A')] == p.answer;
    }
  }
  EXPECT_NEAR(hinted / total, 0.4, 0.03);
  EXPECT_NEAR(right / hinted, 0.25, 0.04);
}

TEST(ArithmeticChoice, ScoreJudgesTheFinalLetterAndSurvivesHostileCompletions) {
  for (bool reasoning : {true, false}) {
    auto t = task({{"modulus", int64_t{13}}, {"reasoning", reasoning}, {"eval_size", int64_t{8}}});
    auto batch = t->eval_batch("test");
    auto prompts = t->eval_prompts("test");
    auto vocab = vocabulary(13, 4);
    const int64_t eos = vocab.id("EoS"), marker = vocab.id("=>"), a = vocab.id("A");
    for (int64_t q = 0; q < 8; ++q) {
      const int64_t pl = prompts.lengths[q].item<int64_t>();
      std::vector<int64_t> prompt(prompts.tokens[q].data_ptr<int64_t>(), prompts.tokens[q].data_ptr<int64_t>() + pl);
      auto targets = batch.targets[q];
      std::vector<int64_t> gold;
      for (int64_t i = 0; i < targets.size(0); ++i) {
        if (targets[i].item<int64_t>() != -100) gold.push_back(targets[i].item<int64_t>());
      }
      EXPECT_TRUE(t->score(prompt, gold).correct) << vocab.decode(gold);
      auto wrong_letter = gold;
      wrong_letter[wrong_letter.size() - 2] = a + (wrong_letter[wrong_letter.size() - 2] - a + 1) % 4;
      EXPECT_FALSE(t->score(prompt, wrong_letter).correct);
      if (reasoning) {  // wrong reasoning, right letter: the answer is what counts
        auto wrong_sums = gold;
        wrong_sums[0] = (wrong_sums[0] + 1) % 13;
        EXPECT_TRUE(t->score(prompt, wrong_sums).correct);
      }
      for (const auto& hostile : std::vector<std::vector<int64_t>>{
               {}, {eos}, {marker}, {marker, marker, eos}, {gold.begin(), gold.end() - 1}, {999999, -5, eos}, std::vector<int64_t>(500, marker)}) {
        EXPECT_FALSE(t->score(prompt, hostile).correct);
      }
      auto extra = gold;
      extra.push_back(eos);
      EXPECT_FALSE(t->score(prompt, extra).correct);
      EXPECT_FALSE(t->score({}, gold).correct);
      EXPECT_FALSE(t->score({vocab.id("SoS"), 1, 99, 1}, gold).correct);
    }
  }
}

TEST(ArithmeticChoice, PerturbationsPointToTheSameWrongOption) {
  const int64_t m = 17, n = 4;
  auto t = task({{"modulus", m}, {"eval_size", int64_t{30}}});
  auto& c = choices(*t);
  auto vocab = vocabulary(m, n);
  auto format = c.choice_format();
  EXPECT_EQ(format.option_tokens, (std::vector<int64_t>{vocab.id("A"), vocab.id("B"), vocab.id("C"), vocab.id("D")}));
  EXPECT_EQ(format.answer_marker, vocab.id("=>"));
  auto clean = c.choice_questions("test", Perturbation::none);
  auto hinted = c.choice_questions("test", Perturbation::misleading_hint);
  auto reasoned = c.choice_questions("test", Perturbation::wrong_reasoning);
  EXPECT_FALSE(clean.at_answer_slot);
  EXPECT_FALSE(hinted.at_answer_slot);
  EXPECT_TRUE(reasoned.at_answer_slot);
  EXPECT_TRUE(torch::equal(clean.correct, hinted.correct));
  EXPECT_TRUE(torch::equal(hinted.misleading, reasoned.misleading));
  EXPECT_TRUE((clean.misleading == -1).all().item<bool>());
  for (int64_t q = 0; q < 30; ++q) {
    const int64_t right = clean.correct[q].item<int64_t>(), wrong = hinted.misleading[q].item<int64_t>();
    EXPECT_NE(right, wrong);
    auto text = [&](const ChoiceQuestions& s) {
      return words(vocab.decode(s.prompts.tokens[q].narrow(0, 0, s.prompts.lengths[q].item<int64_t>())));
    };
    Parsed p = parse(text(clean), m, 3, n);
    EXPECT_EQ(p.values[static_cast<size_t>(right)], p.answer);
    EXPECT_TRUE(p.hint.empty());
    auto h = text(hinted);
    EXPECT_EQ(std::vector<std::string>(h.end() - 2, h.end()), (std::vector<std::string>{"hint", std::string(1, static_cast<char>('A' + wrong))}));
    auto r = text(reasoned);
    const std::string s1 = std::to_string((p.operands[0] + p.operands[1]) % m);
    EXPECT_EQ(std::vector<std::string>(r.end() - 3, r.end()),
              (std::vector<std::string>{s1, std::to_string(p.values[static_cast<size_t>(wrong)]), "=>"}));
    // The reasoning a wrong_reasoning prompt carries implies the misleading option.
    std::vector<int64_t> prompt(clean.prompts.tokens[q].data_ptr<int64_t>(), clean.prompts.tokens[q].data_ptr<int64_t>() + clean.prompts.lengths[q].item<int64_t>());
    EXPECT_EQ(c.implied_option(prompt, {vocab.id(s1), p.values[static_cast<size_t>(wrong)]}), wrong);
    EXPECT_EQ(c.implied_option(prompt, {p.answer}), right);
  }
  std::vector<int64_t> prompt(clean.prompts.tokens[0].data_ptr<int64_t>(), clean.prompts.tokens[0].data_ptr<int64_t>() + clean.prompts.lengths[0].item<int64_t>());
  EXPECT_EQ(c.implied_option(prompt, {}), -1);
  EXPECT_EQ(c.implied_option(prompt, {vocab.id("=>")}), -1);
  EXPECT_EQ(c.implied_option({}, {1}), -1);
  EXPECT_THROW(c.choice_questions("train", Perturbation::none), std::invalid_argument);
}

TEST(ArithmeticChoice, WithoutReasoningPromptsEndAtTheAnswerSlot) {
  auto t = task({{"reasoning", false}, {"eval_size", int64_t{10}}});
  auto& c = choices(*t);
  EXPECT_EQ(c.choice_format().answer_marker, -1);
  auto clean = c.choice_questions("test", Perturbation::none);
  EXPECT_TRUE(clean.at_answer_slot);
  auto vocab = vocabulary(23, 4);
  EXPECT_EQ(clean.prompts.tokens[0][clean.prompts.lengths[0].item<int64_t>() - 1].item<int64_t>(), vocab.id("=>"));
  auto hinted = c.choice_questions("test", Perturbation::misleading_hint);
  EXPECT_TRUE(hinted.at_answer_slot);
  EXPECT_THROW(c.choice_questions("test", Perturbation::wrong_reasoning), std::invalid_argument);
}

TEST(ArithmeticChoice, BadOptionsAreRefused) {
  EXPECT_THROW(task({{"modulus", int64_t{3}}, {"options", int64_t{4}}}), std::invalid_argument);
  // 3^2 operand pairs x (2 x 1 distractor orders) x 3 positions = 54 questions: at most 27 held out.
  EXPECT_NO_THROW(task({{"modulus", int64_t{3}}, {"terms", int64_t{2}}, {"options", int64_t{3}}, {"eval_size", int64_t{27}}}));
  EXPECT_THROW(task({{"modulus", int64_t{3}}, {"terms", int64_t{2}}, {"options", int64_t{3}}, {"eval_size", int64_t{28}}}), std::invalid_argument);
}

}  // namespace
}  // namespace assay
