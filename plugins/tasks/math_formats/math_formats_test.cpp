#include <assay/answer_details.hpp>
#include <assay/sequences.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <set>

#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Task> task(const Values& overrides, uint64_t seed = 0) {
  Context context;
  context.seed = seed;
  return testing::plugins().create<Task>("math_formats", testing::values_of(Kind::task, "math_formats", overrides), context);
}

AnswerDetails& details_of(Task& t) {
  Context context;
  context.task = &t;
  return answer_details_task(context, "math_formats_test");
}

// The documented vocabulary, in id order.
Vocabulary vocabulary() {
  return Vocabulary({"<pad>", "<bos>", "<eos>", "<sep>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
                     "a", "b", "c", "d", "e", "g", "h", "k", "m", "n", "+", "-", "*", "=", "(", ")", ":", ";", "<nl>",
                     "def", "f", "return", "print", "<code>", "</code>", "boxed", "{", "}", "has", "more", "less", "than",
                     "times", "how", "many", "does", "have", ".", "?"});
}
const Vocabulary kVocab = vocabulary();
const std::vector<std::string> kFormats = {"function_code", "tagged_code", "prose"};
const std::vector<std::string> kEntities = {"a", "b", "c", "d", "e", "g", "h", "k", "m", "n"};

std::vector<int64_t> to_vector(const at::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

std::vector<int64_t> ids(const std::string& text) {
  std::vector<std::string> words;
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = std::min(text.find(' ', start), text.size());
    if (end > start) words.push_back(text.substr(start, end - start));
  }
  return kVocab.encode(words);
}

std::string text(const std::vector<int64_t>& tokens) { return kVocab.decode(tokens); }

// Like text, with ids outside the vocabulary shown as #id (for failure messages on random tokens).
std::string safe_text(const std::vector<int64_t>& tokens) {
  std::string s;
  for (int64_t t : tokens) s += (s.empty() ? "" : " ") + (t >= 0 && t < kVocab.size() ? kVocab.symbol(t) : "#" + std::to_string(t));
  return s;
}

// " 0 0 ... 0": n zero tokens.
std::string zeros(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += " 0";
  return s;
}

// "1 7" for 17.
std::string spell(int64_t n) {
  std::string s;
  for (char c : std::to_string(n)) s += s.empty() ? std::string(1, c) : std::string(" ") + c;
  return s;
}

// A problem as the test reads it: entity i + 1 = entity ref[i] (op[i]) operand[i].
struct Problem {
  int64_t start = 0;
  std::vector<int64_t> ref, operand;
  std::vector<char> op;  // '+', '-', '*'
};

// Every entity's value, or nothing when one leaves [0, max_value] or a constant does.
std::optional<std::vector<int64_t>> values_of(const Problem& p, int64_t max_value = 99) {
  if (p.start < 0 || p.start > max_value) return std::nullopt;
  std::vector<int64_t> v = {p.start};
  for (size_t i = 0; i < p.op.size(); ++i) {
    const int64_t x = v[static_cast<size_t>(p.ref[i])], n = p.operand[i];
    if (n < 0 || n > max_value) return std::nullopt;
    const int64_t y = p.op[i] == '+' ? x + n : p.op[i] == '-' ? x - n : x * n;
    if (y < 0 || y > max_value) return std::nullopt;
    v.push_back(y);
  }
  return v;
}

// Reads "<bos> a has 3 . b has 5 times a . c has 2 more than b . how many does c have ? <sep>" (own code,
// independent of the task's); fails the test on any other text.
Problem parse_question(const std::string& question) {
  std::vector<std::string> w;  // words, with consecutive digits joined into one number
  for (const auto id : ids(question)) {
    const std::string& s = kVocab.symbol(id);
    const bool digit = s.size() == 1 && s[0] >= '0' && s[0] <= '9';
    if (digit && !w.empty() && std::isdigit(static_cast<unsigned char>(w.back()[0]))) {
      w.back() += s;
    } else {
      w.push_back(s);
    }
  }
  Problem p;
  EXPECT_GE(w.size(), 12u) << question;
  if (w.size() < 12) return p;
  EXPECT_EQ(std::vector<std::string>(w.begin(), w.begin() + 3), (std::vector<std::string>{"<bos>", "a", "has"})) << question;
  p.start = std::stoll(w[3]);
  EXPECT_EQ(w[4], ".");
  size_t i = 5;
  for (size_t entity = 1; w[i] != "how"; ++entity) {
    EXPECT_EQ(w[i], kEntities[entity]) << question;
    EXPECT_EQ(w[i + 1], "has") << question;
    p.operand.push_back(std::stoll(w[i + 2]));
    const bool times = w[i + 3] == "times";
    p.op.push_back(times ? '*' : w[i + 3] == "more" ? '+' : '-');
    if (!times) EXPECT_EQ(w[i + 4], "than") << question;
    i += times ? 4 : 5;
    const auto ref = std::find(kEntities.begin(), kEntities.end(), w[i]) - kEntities.begin();
    EXPECT_LT(ref, static_cast<int64_t>(entity)) << question;
    p.ref.push_back(ref);
    EXPECT_EQ(w[i + 1], ".") << question;
    i += 2;
    if (i >= w.size() || entity > 9) {
      ADD_FAILURE() << question;
      return p;
    }
  }
  EXPECT_EQ(std::vector<std::string>(w.begin() + static_cast<std::ptrdiff_t>(i), w.end()),
            (std::vector<std::string>{"how", "many", "does", kEntities[p.op.size()], "have", "?", "<sep>"}))
      << question;
  return p;
}

// The documented solution of `p` in format f (0 function_code, 1 tagged_code, 2 prose).
std::string solution_text(const Problem& p, int f) {
  const auto v = *values_of(p, 1000000);
  const std::string last = kEntities[p.op.size()];
  std::string s;
  if (f == 2) {
    s = "a has " + spell(p.start) + " .";
    for (size_t i = 0; i < p.op.size(); ++i) {
      s += " " + kEntities[i + 1] + " has " + spell(v[static_cast<size_t>(p.ref[i])]) + " " + p.op[i] + " " + spell(p.operand[i]) +
           " = " + spell(v[i + 1]) + " .";
    }
    return s + " boxed { " + spell(v.back()) + " } <eos>";
  }
  const std::string separator = f == 0 ? " ; " : " <nl> ";
  s = (f == 0 ? "def f ( ) : " : "<code> ") + std::string("a = ") + spell(p.start) + separator;
  for (size_t i = 0; i < p.op.size(); ++i) {
    s += kEntities[i + 1] + " = " + kEntities[static_cast<size_t>(p.ref[i])] + " " + p.op[i] + " " + spell(p.operand[i]) + separator;
  }
  return s + (f == 0 ? "return " + last : "print ( " + last + " ) </code>") + " <eos>";
}

// The documented mistakes of p: one constant off by 1..3 (a's value or a step's), or one step's operation
// replaced, keeping every value in [0, max_value] and changing the answer.
std::vector<Problem> mistakes_of(const Problem& p, int64_t max_value = 99) {
  const int64_t truth = values_of(p, max_value)->back();
  std::vector<Problem> out;
  auto keep = [&](const Problem& q) {
    const auto v = values_of(q, max_value);
    if (v && v->back() != truth) out.push_back(q);
  };
  for (int64_t delta : {-3, -2, -1, 1, 2, 3}) {
    Problem q = p;
    q.start += delta;
    keep(q);
    for (size_t i = 0; i < p.op.size(); ++i) {
      q = p;
      q.operand[i] += delta;
      keep(q);
    }
  }
  for (size_t i = 0; i < p.op.size(); ++i) {
    for (char op : {'+', '-', '*'}) {
      if (op == p.op[i]) continue;
      Problem q = p;
      q.op[i] = op;
      keep(q);
    }
  }
  return out;
}

// Row r of an answer-only batch split back into its prompt and its answer (the scored targets).
SequenceExample example_row(const Batch& batch, int64_t r) {
  const auto inputs = to_vector(batch.inputs[r]), targets = to_vector(batch.targets[r]);
  SequenceExample e;
  size_t first = 0;
  while (first < targets.size() && targets[first] == -100) ++first;
  if (first == targets.size()) return e;
  e.prompt.assign(inputs.begin(), inputs.begin() + static_cast<std::ptrdiff_t>(first) + 1);
  for (int64_t t : targets) {
    if (t != -100) e.answer.push_back(t);
  }
  return e;
}

std::vector<int64_t> prompt_row(const PromptBatch& prompts, int64_t r) {
  auto row = to_vector(prompts.tokens[r]);
  row.resize(static_cast<size_t>(prompts.lengths[r].item<int64_t>()));
  return row;
}

const Values kAnswerOnly = {{"loss_on_prompt", false}};

Values with(Values values, const Values& more) {
  for (const auto& [k, v] : more) values[k] = v;
  return values;
}

Values one_format(int f, double error_rate) {
  std::vector<double> weights(3, 0.0);
  weights[static_cast<size_t>(f)] = 1;
  return with(kAnswerOnly, {{"weights", weights}, {"error_rates", std::vector<double>(3, error_rate)}});
}

// ---- Documents ----

TEST(MathFormats, VocabularyShapeAndCompletionFormat) {
  auto t = task(kAnswerOnly);
  const auto shape = t->shape();
  EXPECT_EQ(shape.vocab_size, 53);
  EXPECT_EQ(shape.num_classes, 53);
  // Prompt at most 11 + D + K (6 + D) = 45, answer at most 7 + 2D + K (5 + 3D) = 55 (prose), D = 2 digits, K = 4.
  EXPECT_EQ(shape.input_length, 45 + 55 - 1);
  const auto format = t->completion_format();
  EXPECT_EQ(format.stop_tokens, (std::vector<int64_t>{kVocab.id("<eos>")}));
  EXPECT_EQ(format.pad_token, kVocab.id("<pad>"));
  EXPECT_EQ(format.max_new_tokens, 55);
  EXPECT_EQ(t->eval_splits(), (std::vector<std::string>{"train", "test"}));
  // The documented example decodes as documented.
  const auto e = example_row(task(one_format(0, 0.0))->train_batch(0), 0);
  EXPECT_EQ(text(e.answer), solution_text(parse_question(text(e.prompt)), 0));
}

// Every document of every format, without mistakes, is the documented solution of its question and verifies.
TEST(MathFormats, EveryFormatSolvesItsProblemAndVerifies) {
  for (int f = 0; f < 3; ++f) {
    auto t = task(one_format(f, 0.0), 5);
    auto& details = details_of(*t);
    std::set<size_t> steps_seen;
    for (int64_t step = 0; step < 4; ++step) {
      const auto batch = t->train_batch(step);
      for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
        const auto e = example_row(batch, r);
        const Problem p = parse_question(text(e.prompt));
        const auto values = values_of(p);
        ASSERT_TRUE(values) << text(e.prompt);
        EXPECT_GE(p.op.size(), 2u);
        EXPECT_LE(p.op.size(), 4u);
        steps_seen.insert(p.op.size());
        EXPECT_EQ(text(e.answer), solution_text(p, f));
        EXPECT_TRUE(t->score(e.prompt, e.answer).correct) << text(e.answer);
        EXPECT_EQ(t->score(e.prompt, e.answer).reward, 1.0);
        const auto d = details.answer_details(e.prompt, e.answer);
        EXPECT_EQ(d.form, f);
        EXPECT_EQ(d.checks, (std::vector<int8_t>{1}));
      }
    }
    EXPECT_EQ(steps_seen, (std::set<size_t>{2, 3, 4}));
  }
}

// With error rate 1, every document is one documented mistake away from its problem: well-formed, wrong.
TEST(MathFormats, InjectedMistakesAreWellFormedAndWrong) {
  for (int f = 0; f < 3; ++f) {
    auto t = task(one_format(f, 1.0), 9);
    auto& details = details_of(*t);
    int on_start = 0, on_operation = 0;
    for (int64_t step = 0; step < 4; ++step) {
      const auto batch = t->train_batch(step);
      for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
        const auto e = example_row(batch, r);
        const Problem p = parse_question(text(e.prompt));
        const std::string written = text(e.answer);
        EXPECT_NE(written, solution_text(p, f));
        bool found = false;
        for (const auto& q : mistakes_of(p)) {
          if (solution_text(q, f) != written) continue;
          found = true;
          on_start += q.start != p.start;
          on_operation += q.op != p.op;
        }
        EXPECT_TRUE(found) << text(e.prompt) << " | " << written;
        EXPECT_FALSE(t->score(e.prompt, e.answer).correct) << written;
        EXPECT_EQ(t->score(e.prompt, e.answer).reward, 0.0);
        const auto d = details.answer_details(e.prompt, e.answer);
        EXPECT_EQ(d.form, f);
        EXPECT_EQ(d.checks, (std::vector<int8_t>{1}));
      }
    }
    EXPECT_GT(on_start, 0);  // every kind of mistake occurs
    EXPECT_GT(on_operation, 0);
  }
}

// The corpus's format shares and per-format error rates are the options' (within 4.5 binomial standard deviations).
TEST(MathFormats, CorpusMixtureAndErrorRatesMatchTheOptions) {
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> settings = {
      {{0.5, 0.3, 0.2}, {0.3, 0.1, 0.2}},  // the defaults
      {{1.0, 0.0, 3.0}, {0.0, 0.7, 0.05}}};
  for (const auto& [weights, error_rates] : settings) {
    auto t = task(with(kAnswerOnly, {{"weights", weights}, {"error_rates", error_rates}}), 11);
    auto& details = details_of(*t);
    double count[3] = {}, wrong[3] = {}, total = 0;
    for (int64_t step = 0; step < 100; ++step) {
      const auto batch = t->train_batch(step);
      for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
        const auto e = example_row(batch, r);
        const int64_t f = details.answer_details(e.prompt, e.answer).form;
        ASSERT_TRUE(f >= 0 && f < 3) << text(e.answer);
        count[f] += 1;
        wrong[f] += !t->score(e.prompt, e.answer).correct;
        total += 1;
      }
    }
    const double weight_sum = weights[0] + weights[1] + weights[2];
    for (size_t f = 0; f < 3; ++f) {
      const double p = weights[f] / weight_sum, share = count[f] / total;
      EXPECT_NEAR(share, p, 4.5 * std::sqrt(p * (1 - p) / total) + 1e-12) << kFormats[f];
      if (count[f] == 0) continue;
      const double q = error_rates[f], rate = wrong[f] / count[f];
      EXPECT_NEAR(rate, q, 4.5 * std::sqrt(q * (1 - q) / count[f]) + 1e-12) << kFormats[f];
    }
  }
}

TEST(MathFormats, TrainingBatchesArePureFunctionsOfSeedAndStep) {
  auto t = task({}, 3);
  const auto first = t->train_batch(7);
  t->train_batch(8);
  EXPECT_TRUE(torch::equal(t->train_batch(7).inputs, first.inputs));
  EXPECT_TRUE(torch::equal(task({}, 3)->train_batch(7).targets, first.targets));
  EXPECT_FALSE(torch::equal(t->train_batch(8).inputs, first.inputs));
  EXPECT_FALSE(torch::equal(task({}, 4)->train_batch(7).inputs, first.inputs));
  EXPECT_EQ(first.inputs.sizes(), (std::vector<int64_t>{64, 99}));
}

TEST(MathFormats, LossOnPromptScoresTheWholeDocument) {
  auto plain = task(kAnswerOnly, 2)->train_batch(4);
  auto full = task({}, 2)->train_batch(4);  // loss_on_prompt = true is the default
  ASSERT_TRUE(torch::equal(plain.inputs, full.inputs));
  for (int64_t r = 0; r < 64; ++r) {
    const auto inputs = to_vector(plain.inputs[r]), a = to_vector(plain.targets[r]), b = to_vector(full.targets[r]);
    const auto prompt_length = example_row(plain, r).prompt.size();
    for (size_t i = 0; i < a.size(); ++i) {
      if (i + 1 < prompt_length) {
        EXPECT_EQ(a[i], -100);
        EXPECT_EQ(b[i], inputs[i + 1]) << "row " << r << " position " << i;
      } else {
        EXPECT_EQ(b[i], a[i]) << "row " << r << " position " << i;
      }
    }
  }
  EXPECT_TRUE(torch::equal(task({})->eval_batch("test").targets, task(kAnswerOnly)->eval_batch("test").targets));
}

// The documented length bounds are reached (all-prose corpus, many documents) and never exceeded.
TEST(MathFormats, LengthBoundsAreExact) {
  auto t = task(one_format(2, 0.3), 1);
  size_t longest_prompt = 0, longest_answer = 0;
  for (int64_t step = 0; step < 150; ++step) {
    const auto batch = t->train_batch(step);
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
      const auto e = example_row(batch, r);
      longest_prompt = std::max(longest_prompt, e.prompt.size());
      longest_answer = std::max(longest_answer, e.answer.size());
    }
  }
  EXPECT_EQ(longest_prompt, 45u);
  EXPECT_EQ(longest_answer, 55u);
  // Three digits and five steps: 11 + 3 + 5 * 9 = 59 and 7 + 6 + 5 * 14 = 83.
  auto wide = task(with(one_format(2, 0.0), {{"max_value", int64_t{999}}, {"max_steps", int64_t{5}}}));
  EXPECT_EQ(wide->shape().input_length, 59 + 83 - 1);
  EXPECT_EQ(wide->completion_format().max_new_tokens, 83);
}

// ---- Eval splits and prompts ----

TEST(MathFormats, EvalTargetsAreCorrectSolutionsInTheHeaviestFormat) {
  const std::vector<std::pair<std::vector<double>, int64_t>> cases = {
      {{0.5, 0.3, 0.2}, 0}, {{0.2, 0.5, 0.3}, 1}, {{0.1, 0.1, 0.8}, 2}, {{0.4, 0.2, 0.4}, 0}};
  for (const auto& [weights, heaviest] : cases) {
    auto t = task({{"weights", weights}, {"error_rates", std::vector<double>{1.0, 1.0, 1.0}}});
    auto& details = details_of(*t);
    for (const auto& split : t->eval_splits()) {
      const auto batch = t->eval_batch(split);
      EXPECT_EQ(batch.inputs.size(0), 512);
      for (int64_t r = 0; r < batch.inputs.size(0); r += 7) {
        const auto e = example_row(batch, r);
        EXPECT_EQ(text(e.answer), solution_text(parse_question(text(e.prompt)), static_cast<int>(heaviest))) << split;
        EXPECT_TRUE(t->score(e.prompt, e.answer).correct);
        EXPECT_EQ(details.answer_details(e.prompt, e.answer).form, heaviest);
      }
    }
  }
}

TEST(MathFormats, EvalPromptsAreThePromptsOfTheEvalBatches) {
  auto t = task({{"train_eval_size", int64_t{40}}, {"test_size", int64_t{30}}});
  for (const auto& split : t->eval_splits()) {
    const auto batch = t->eval_batch(split);
    const auto prompts = t->eval_prompts(split);
    ASSERT_EQ(prompts.tokens.size(0), batch.inputs.size(0)) << split;
    EXPECT_EQ(batch.inputs.size(0), split == "train" ? 40 : 30);
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) EXPECT_EQ(prompt_row(prompts, r), example_row(batch, r).prompt);
  }
}

TEST(MathFormats, EvalSetsDependOnEvalSeedOnly) {
  auto a = task({}, 0), b = task({}, 99), c = task({{"eval_seed", int64_t{7}}}, 0);
  for (const auto& split : a->eval_splits()) {
    EXPECT_TRUE(torch::equal(a->eval_batch(split).inputs, b->eval_batch(split).inputs)) << split;
    EXPECT_FALSE(torch::equal(a->eval_batch(split).inputs, c->eval_batch(split).inputs)) << split;
  }
  EXPECT_FALSE(torch::equal(a->eval_batch("train").inputs, a->eval_batch("test").inputs));
}

// In a space of about a hundred problems, training sees every problem but the test ones, and the test split
// only those: a split of the problem space, not a chance of collision.
TEST(MathFormats, TestProblemsAreNeverTrainedOn) {
  const Values small = with(kAnswerOnly, {{"min_steps", int64_t{1}}, {"max_steps", int64_t{1}}, {"max_value", int64_t{9}}});
  auto t = task(small);
  std::set<std::string> all;  // every one-step problem, enumerated
  for (int64_t start = 1; start <= 9; ++start) {
    for (char op : {'+', '-', '*'}) {
      for (int64_t n = op == '*' ? 2 : 1; n <= 9; ++n) {
        const Problem p{start, {0}, {n}, {op}};
        if (!values_of(p, 9)) continue;
        all.insert(std::string("<bos> a has ") + spell(start) + " . b has " + spell(n) +
                   (op == '*' ? " times" : op == '+' ? " more than" : " less than") + " a . how many does b have ? <sep>");
      }
    }
  }
  std::set<std::string> trained, tested;
  for (int64_t step = 0; step < 200; ++step) {
    const auto batch = t->train_batch(step);
    for (int64_t r = 0; r < 64; ++r) trained.insert(text(example_row(batch, r).prompt));
    const auto prompts = t->train_prompts(step, 16);
    for (int64_t r = 0; r < 16; ++r) trained.insert(text(prompt_row(prompts, r)));
  }
  const auto train_split = t->eval_prompts("train"), test_split = t->eval_prompts("test");
  for (int64_t r = 0; r < 512; ++r) {
    trained.insert(text(prompt_row(train_split, r)));
    tested.insert(text(prompt_row(test_split, r)));
  }
  for (const auto& q : tested) EXPECT_EQ(trained.count(q), 0u) << q;
  std::set<std::string> both = trained;
  both.insert(tested.begin(), tested.end());
  EXPECT_EQ(both, all);
  EXPECT_GE(tested.size(), 3u);  // about 1 in 8
  EXPECT_LE(tested.size(), all.size() / 3);
}

TEST(MathFormats, TrainPromptsArePureFunctionsOfSeedAndStep) {
  auto t = task({}, 5);
  const auto a = t->train_prompts(3, 10);
  EXPECT_TRUE(torch::equal(t->train_prompts(3, 10).tokens, a.tokens));
  EXPECT_TRUE(torch::equal(task({}, 5)->train_prompts(3, 10).tokens, a.tokens));
  EXPECT_FALSE(torch::equal(t->train_prompts(4, 10).tokens, a.tokens));
  EXPECT_FALSE(torch::equal(task({}, 6)->train_prompts(3, 10).tokens, a.tokens));
  const auto b = t->train_prompts(3, 4);
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(prompt_row(b, r), prompt_row(a, r));
  for (int64_t r = 0; r < 10; ++r) {  // well-formed questions the documented solutions answer
    const auto prompt = prompt_row(a, r);
    const Problem p = parse_question(text(prompt));
    for (int f = 0; f < 3; ++f) EXPECT_TRUE(t->score(prompt, ids(solution_text(p, f))).correct);
  }
  EXPECT_THROW(t->train_prompts(0, 0), std::invalid_argument);
  EXPECT_THROW(t->train_prompts(-1, 4), std::invalid_argument);
}

// ---- The verifier ----

struct Case {
  std::string what, completion;
  bool correct;
  int64_t form;
  int8_t well_formed;
};

TEST(MathFormats, VerifierFollowsTheRuleAndSurvivesHostileCompletions) {
  auto t = task({});
  auto& details = details_of(*t);
  const auto prompts = t->eval_prompts("test");
  for (int64_t r = 0; r < 20; ++r) {
    const auto prompt = prompt_row(prompts, r);
    const auto answer = values_of(parse_question(text(prompt)))->back();
    const std::string A = spell(answer), W = spell(answer + 1);
    const std::vector<Case> cases = {
        {"tagged code", "<code> print ( " + A + " ) </code> <eos>", true, 1, 1},
        {"tagged code, computed", "<code> a = " + W + " <nl> b = a - 1 <nl> print ( b ) </code> <eos>", true, 1, 1},
        {"tagged code, last print counts", "<code> print ( " + A + " ) <nl> print ( " + W + " ) </code> <eos>", false, 1, 1},
        {"tagged code, unterminated", "<code> print ( " + A + " ) <eos>", false, 1, 0},
        {"tagged code, prints nothing", "<code> a = " + A + " </code> <eos>", false, 1, 0},
        {"tagged code beats boxed", "boxed { " + A + " } <code> print ( " + W + " ) </code> <eos>", false, 1, 1},
        {"tagged code beats def", "def f ( ) : return " + A + " <nl> <code> print ( " + W + " ) </code> <eos>", false, 1, 1},
        {"tagged code calling a function", "<code> def f ( ) : return " + A + " <nl> print ( f ( ) ) </code> <eos>", true, 1, 1},
        {"tagged code, a syntax error", "<code> print ( " + A + " ) <nl> { </code> <eos>", false, 1, 0},
        {"tagged code, an undefined name", "<code> print ( " + A + " ) <nl> print ( has ) </code> <eos>", false, 1, 0},
        {"function code", "def f ( ) : a = " + A + " ; return a <eos>", true, 0, 1},
        {"function code, only its line", "def f ( ) : return " + A + " <nl> a has . <eos>", true, 0, 1},
        {"function code, no return", "def f ( ) : a = " + A + " <eos>", false, 0, 0},
        {"function code, unterminated def", "def f ( ) : <eos>", false, 0, 0},
        {"function code, no colon", "def f ( ) return " + A + " <eos>", false, 0, 0},
        {"function code, infinite recursion", "def f ( ) : return f ( ) <eos>", false, 0, 0},
        {"function code beats boxed", "def f ( ) : return " + W + " <nl> boxed { " + A + " } <eos>", false, 0, 1},
        {"function code, another name", "def g ( ) : return " + A + " <eos>", true, 0, 1},
        {"function code, prose after it", "def f ( ) : return " + A + " <nl> boxed { " + W + " } <eos>", true, 0, 1},
        {"function code, a 30-digit literal", "def f ( ) : return 1" + zeros(29) + " <eos>", false, 0, 0},
        {"function code, overflow", "def f ( ) : a = " + spell(999999999999999999LL) + " ; return a * a <eos>", false, 0, 0},
        {"prose", "a has 3 . boxed { " + A + " } <eos>", true, 2, 1},
        {"prose, the last boxed counts", "boxed { " + W + " } . boxed { " + A + " } <eos>", true, 2, 1},
        {"prose, the last boxed is broken", "boxed { " + A + " } . boxed { " + A + " <eos>", false, 2, 0},
        {"prose, empty box", "boxed { } <eos>", false, 2, 0},
        {"prose, a leading zero", "boxed { 0 " + A + " } <eos>", false, 2, 0},
        {"prose, no braces", "boxed " + A + " <eos>", false, 2, 0},
        {"prose, wrong", "boxed { " + W + " } <eos>", false, 2, 1},
        {"prose without <eos>", "boxed { " + A + " }", true, 2, 1},
        {"after <eos> is ignored", "boxed { " + A + " } <eos> <code> print ( " + W + " ) </code>", true, 2, 1},
        {"no answer", "a has 3 . <eos>", false, -1, -1},
        {"empty", "", false, -1, -1},
        {"only <eos>", "<eos>", false, -1, -1},
        {"the prompt repeated", text(prompt), false, -1, -1},
    };
    for (const auto& c : cases) {
      const auto completion = ids(c.completion);
      Verdict v;
      ASSERT_NO_THROW(v = t->score(prompt, completion)) << c.what;
      EXPECT_EQ(v.correct, c.correct) << c.what << ": " << c.completion;
      EXPECT_EQ(v.reward, c.correct ? 1.0 : 0.0) << c.what;
      const auto d = details.answer_details(prompt, completion);
      EXPECT_EQ(d.form, c.form) << c.what;
      EXPECT_EQ(d.checks, (std::vector<int8_t>{c.well_formed})) << c.what;
    }
    // Ids outside the vocabulary are tokens like any other wrong one.
    for (const auto& bad : std::vector<std::vector<int64_t>>{{-1}, {999}, {kVocab.id("boxed"), kVocab.id("{"), -7, kVocab.id("}")}}) {
      EXPECT_FALSE(t->score(prompt, bad).correct);
      EXPECT_NO_THROW(details.answer_details(prompt, bad));
    }
    // The right answer to a question the task would not write is no answer.
    const auto right = ids("boxed { " + A + " } <eos>");
    EXPECT_TRUE(t->score(prompt, right).correct);
    auto without_sep = prompt;
    without_sep.pop_back();
    auto padded = prompt;
    padded.push_back(kVocab.id("<pad>"));
    auto no_bos = std::vector<int64_t>(prompt.begin() + 1, prompt.end());
    for (const auto& bad_prompt : {without_sep, padded, no_bos, std::vector<int64_t>{}, std::vector<int64_t>{-3, 400}}) {
      EXPECT_FALSE(t->score(bad_prompt, right).correct) << text(prompt);
    }
  }
}

TEST(MathFormats, InfiniteRecursionIsCutShort) {
  auto t = task({{"max_call_depth", int64_t{256}}, {"max_interpreter_steps", int64_t{10000000}}});
  const auto prompt = prompt_row(t->eval_prompts("test"), 0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(t->score(prompt, ids("def f ( ) : return f ( ) + f ( ) <eos>")).correct);
    EXPECT_FALSE(t->score(prompt, ids("<code> def f ( ) : return f ( ) <nl> print ( f ( ) ) </code> <eos>")).correct);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

// Random completions (ids in and around the vocabulary, some around real solutions): no throw, and the form
// and well_formed check are what the documented rule says.
TEST(MathFormats, RandomCompletionsNeverThrowAndAreReadByTheRule) {
  auto t = task(kAnswerOnly);
  auto& details = details_of(*t);
  const auto batch = t->train_batch(0);
  const int64_t eos = kVocab.id("<eos>");
  SplitMix64 rng(13);
  int forms[4] = {}, correct = 0;
  for (int i = 0; i < 5000; ++i) {
    const auto e = example_row(batch, i % 64);
    std::vector<int64_t> c;
    if (i % 2) {  // edits of a real solution
      c = e.answer;
      for (int64_t k = rng.uniform(1, 3); k > 0; --k) {
        const auto at = rng.uniform(0, static_cast<int64_t>(c.size()));
        const int64_t id = rng.uniform(-2, 55);
        if (rng.uniform(0, 1) && at < static_cast<int64_t>(c.size())) {
          c[static_cast<size_t>(at)] = id;
        } else {
          c.insert(c.begin() + at, id);
        }
      }
    } else {
      c.resize(static_cast<size_t>(rng.uniform(0, 120)));
      for (auto& id : c) id = rng.uniform(-2, 55);
    }
    Verdict v;
    AnswerDetail d;
    ASSERT_NO_THROW(v = t->score(e.prompt, c));
    ASSERT_NO_THROW(d = details.answer_details(e.prompt, c));
    const auto before_eos = std::vector<int64_t>(c.begin(), std::find(c.begin(), c.end(), eos));
    auto has = [&](const char* word) { return std::find(before_eos.begin(), before_eos.end(), kVocab.id(word)) != before_eos.end(); };
    const int64_t expected_form = has("<code>") ? 1 : has("def") ? 0 : has("boxed") ? 2 : -1;
    ASSERT_EQ(d.form, expected_form) << safe_text(before_eos);
    ASSERT_EQ(d.checks.size(), 1u);
    if (d.form < 0) ASSERT_EQ(d.checks[0], -1);
    if (v.correct) ASSERT_EQ(d.checks[0], 1);
    forms[d.form + 1] += 1;
    correct += v.correct;
  }
  for (int f = 0; f < 4; ++f) EXPECT_GT(forms[f], 0) << f - 1;
  EXPECT_GT(correct, 0);
}

TEST(MathFormats, AnswerDetailsNameTheFormats) {
  auto t = task({});
  EXPECT_EQ(details_of(*t).answer_forms(), kFormats);
  EXPECT_EQ(details_of(*t).answer_checks(), (std::vector<std::string>{"well_formed"}));
}

void expect_rejected(const Values& changes, const std::string& fragment) {
  try {
    task(changes);
    FAIL() << "accepted; expected an error mentioning '" << fragment << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(MathFormats, BadOptionsAreRejectedWithTheKey) {
  expect_rejected({{"weights", std::vector<double>{0.5, 0.5}}}, "weights needs 3 entries");
  expect_rejected({{"weights", std::vector<double>{0.5, -0.1, 0.5}}}, "weights");
  expect_rejected({{"weights", std::vector<double>{0.0, 0.0, 0.0}}}, "weights must not all be 0");
  expect_rejected({{"error_rates", std::vector<double>{0.1, 0.2, 0.3, 0.4}}}, "error_rates needs 3 entries");
  expect_rejected({{"error_rates", std::vector<double>{0.1, 1.5, 0.3}}}, "error_rates");
  expect_rejected({{"min_steps", int64_t{4}}, {"max_steps", int64_t{2}}}, "min_steps");
  expect_rejected({{"max_steps", int64_t{10}}}, "steps");
}

}  // namespace
}  // namespace assay
