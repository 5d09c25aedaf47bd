#include <assay/answer_details.hpp>
#include <assay/sequences.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "test_support.hpp"

namespace assay {
namespace {

// Keeps the attributes a component describes ("<name>.<key>" -> text).
class DescribingRecorder : public Recorder {
 public:
  void metric(std::string_view, int64_t, double) override {}
  void append(std::string_view, int64_t, const at::Tensor&) override {}
  void describe(std::string_view name, std::string_view key, std::string_view text) override {
    attributes[std::string(name) + "." + std::string(key)] = std::string(text);
  }
  void event(int64_t, std::string_view, std::string_view) override {}
  std::map<std::string, std::string> attributes;
};

std::shared_ptr<Task> task(const Values& overrides, uint64_t seed = 0, Recorder* recorder = nullptr) {
  Context context;
  context.seed = seed;
  context.recorder = recorder;
  return testing::plugins().create<Task>("solution_tree", testing::values_of(Kind::task, "solution_tree", overrides), context);
}

// A JSON array of arrays of numbers, "[[1,2],[3,4]]".
std::vector<std::vector<double>> parse_table(const std::string& text) {
  std::vector<std::vector<double>> rows;
  int depth = 0;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '[') {
      if (++depth == 2) rows.emplace_back();
      ++i;
    } else if (c == ']') {
      --depth;
      ++i;
    } else if (c == ',') {
      ++i;
    } else {
      char* end = nullptr;
      const double x = std::strtod(text.c_str() + i, &end);
      EXPECT_GT(end, text.c_str() + i) << "not a number at " << i << ": " << text.substr(i, 20);
      if (end == text.c_str() + i) return {};
      rows.back().push_back(x);
      i = static_cast<size_t>(end - text.c_str());
    }
  }
  return rows;
}

// The hidden tables, as the task records them.
struct Tables {
  std::vector<std::vector<double>> T, prior, PT, context;
};

Tables tables_of(const Values& overrides, uint64_t seed = 0) {
  DescribingRecorder recorder;
  task(overrides, seed, &recorder);
  return {parse_table(recorder.attributes.at("tables.transitions")), parse_table(recorder.attributes.at("tables.action_prior")),
          parse_table(recorder.attributes.at("tables.problem_transitions")),
          parse_table(recorder.attributes.at("tables.context_given_action"))};
}

// The documented vocabulary: <unk> <bos> <pad> : S P C A I, then "0".."19".
Vocabulary vocabulary(int64_t numbers = 20) {
  std::vector<std::string> symbols = {"<unk>", "<bos>", "<pad>", ":", "S", "P", "C", "A", "I"};
  for (int64_t n = 0; n < numbers; ++n) symbols.push_back(std::to_string(n));
  return Vocabulary(symbols);
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = std::min(text.find(' ', start), text.size());
    out.push_back(text.substr(start, end - start));
  }
  return out;
}

// A problem read back from a prompt's text.
struct Parsed {
  std::vector<int> states, problem_states, actions, contexts, irrelevant;
};

// Reads "S s0 P p0 C c0 P p1 ... P pn I r1 ... I r10 :" and derives the actions from the problem states and the
// states from T (simple code of its own, independent of the task's). Fails the test on any other text.
Parsed parse_prompt(const std::string& prompt, const Tables& tables) {
  const auto w = words(prompt);
  Parsed q;
  EXPECT_GE(w.size(), 2u + 6u + 20u + 1u) << prompt;
  if (w.size() < 29) return q;
  EXPECT_EQ(w[0], "S") << prompt;
  q.states.push_back(std::stoi(w[1]));
  size_t i = 2;
  for (; i + 1 < w.size() && (w[i] == "P" || w[i] == "C"); i += 2) {
    const bool expect_p = (i - 2) % 4 == 0;
    EXPECT_EQ(w[i], expect_p ? "P" : "C") << prompt;
    (expect_p ? q.problem_states : q.contexts).push_back(std::stoi(w[i + 1]));
  }
  for (int j = 0; j < 10; ++j, i += 2) {
    EXPECT_EQ(w[i], "I") << prompt;
    q.irrelevant.push_back(std::stoi(w[i + 1]));
  }
  EXPECT_EQ(i + 1, w.size()) << prompt;
  EXPECT_EQ(w.back(), ":") << prompt;
  EXPECT_EQ(q.contexts.size() + 1, q.problem_states.size()) << prompt;
  for (size_t k = 0; k + 1 < q.problem_states.size(); ++k) {
    int action = -1;
    for (size_t a = 0; a < tables.PT[0].size(); ++a) {
      if (tables.PT[static_cast<size_t>(q.problem_states[k])][a] == q.problem_states[k + 1]) {
        EXPECT_EQ(action, -1) << "two actions lead from p" << q.problem_states[k] << " to p" << q.problem_states[k + 1];
        action = static_cast<int>(a);
      }
    }
    EXPECT_GE(action, 0) << prompt;
    if (action < 0) return q;
    q.actions.push_back(action);
    q.states.push_back(static_cast<int>(tables.T[static_cast<size_t>(q.states.back())][static_cast<size_t>(action)]));
  }
  return q;
}

std::string completion_text(const Parsed& q) {
  std::string text;
  for (size_t i = 0; i < q.states.size(); ++i) {
    text += "S " + std::to_string(q.states[i]) + " ";
    if (i < q.actions.size()) text += "A " + std::to_string(q.actions[i]) + " ";
  }
  return text + "<pad>";
}

// Row r of a packed batch split back into its prompt (the inputs up to the first scored position) and its
// answer (the scored targets, <pad> included).
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

// Checks row r of `batch` (answer-only targets) against the tables: the completion re-derived from the prompt,
// the inputs padded with <pad>; returns the parsed problem.
Parsed check_row(const Batch& batch, int64_t r, const Tables& tables, const Vocabulary& vocab) {
  const auto e = example_row(batch, r);
  const std::string prompt = vocab.decode(e.prompt);
  const Parsed q = parse_prompt(prompt, tables);
  EXPECT_EQ(vocab.decode(e.answer), completion_text(q)) << prompt;
  const auto n = q.actions.size();
  EXPECT_GE(n, 5u) << prompt;
  EXPECT_LE(n, 10u) << prompt;
  EXPECT_EQ(e.prompt.size(), 4 * n + 25) << prompt;
  EXPECT_EQ(e.answer.size(), 4 * n + 3) << prompt;
  // inputs = prompt + answer without its last token, then <pad>; targets -100 before the answer and after it.
  const auto inputs = to_vector(batch.inputs[r]), targets = to_vector(batch.targets[r]);
  const size_t used = e.prompt.size() + e.answer.size() - 1;
  for (size_t t = used; t < inputs.size(); ++t) {
    EXPECT_EQ(inputs[t], 2) << "row " << r << " position " << t;
    EXPECT_EQ(targets[t], -100) << "row " << r << " position " << t;
  }
  std::vector<int64_t> whole = e.prompt;
  whole.insert(whole.end(), e.answer.begin(), e.answer.end());
  for (size_t t = 0; t < used; ++t) EXPECT_EQ(inputs[t], whole[t]) << "row " << r << " position " << t;
  return q;
}

const Values kNone = {};

// ---- The generator ----

TEST(SolutionTree, TablesHaveTheGeneratorsInvariants) {
  const auto tables = tables_of(kNone);
  ASSERT_EQ(tables.T.size(), 20u);
  for (const auto& row : tables.T) {
    ASSERT_EQ(row.size(), 20u);
    for (double s : row) {
      EXPECT_EQ(s, std::floor(s));
      EXPECT_GE(s, 0);
      EXPECT_LT(s, 20);
    }
  }
  std::set<double> targets;
  for (const auto& row : tables.T) targets.insert(row.begin(), row.end());
  EXPECT_GT(targets.size(), 15u);  // 400 uniform draws reach (nearly) every state
  // PT[p] is a permutation of the problem states over the actions: (p, p') names exactly one action.
  ASSERT_EQ(tables.PT.size(), 20u);
  for (const auto& row : tables.PT) {
    ASSERT_EQ(row.size(), 20u);
    std::set<double> distinct(row.begin(), row.end());
    EXPECT_EQ(distinct.size(), 20u);
    EXPECT_EQ(*distinct.begin(), 0);
    EXPECT_EQ(*distinct.rbegin(), 19);
  }
  EXPECT_NE(tables.PT[0], tables.PT[1]);
  // Dirichlet rows: prior [state][action], context [action][context].
  for (const auto* table : {&tables.prior, &tables.context}) {
    ASSERT_EQ(table->size(), 20u);
    for (const auto& row : *table) {
      ASSERT_EQ(row.size(), 20u);
      double sum = 0;
      for (double p : row) {
        EXPECT_GE(p, 0);
        sum += p;
      }
      EXPECT_NEAR(sum, 1, 1e-9);  // recorded with 12 significant digits
    }
  }
  // Fewer actions than problem states: each PT row holds distinct problem states.
  const auto narrow = tables_of({{"num_actions", int64_t{7}}, {"num_problem_states", int64_t{12}}, {"num_states", int64_t{5}}});
  ASSERT_EQ(narrow.T.size(), 5u);
  ASSERT_EQ(narrow.T[0].size(), 7u);
  ASSERT_EQ(narrow.PT.size(), 12u);
  for (const auto& row : narrow.PT) {
    ASSERT_EQ(row.size(), 7u);
    EXPECT_EQ(std::set<double>(row.begin(), row.end()).size(), 7u);
    for (double p : row) EXPECT_LT(p, 12);
  }
  ASSERT_EQ(narrow.prior.size(), 5u);
  ASSERT_EQ(narrow.prior[0].size(), 7u);
  ASSERT_EQ(narrow.context.size(), 7u);
  ASSERT_EQ(narrow.context[0].size(), 20u);
}

// E[sum_i p_i^2] of a Dirichlet(alpha) row over K categories: K alpha (alpha + 1) / (K alpha (K alpha + 1)).
double expected_sum_of_squares(double alpha, int K) { return (alpha + 1) / (K * alpha + 1); }

double mean_sum_of_squares(const std::vector<std::vector<double>>& rows) {
  double total = 0;
  for (const auto& row : rows) {
    for (double p : row) total += p * p;
  }
  return total / static_cast<double>(rows.size());
}

TEST(SolutionTree, DirichletRowsHaveTheirConcentration) {
  // 100 prior rows of 20 actions and 20 context rows per alpha: the mean of sum p^2 (0.186 for alpha 0.3,
  // 0.059 for alpha 5, 0.525 for alpha 0.05; 0.05 would be uniform rows) within about 5 standard errors.
  for (double alpha : {0.3, 5.0, 0.05}) {
    const auto tables = tables_of({{"num_states", int64_t{100}}, {"prior_alpha", alpha}, {"context_alpha", alpha}});
    ASSERT_EQ(tables.prior.size(), 100u);
    const double expected = expected_sum_of_squares(alpha, 20);
    EXPECT_NEAR(mean_sum_of_squares(tables.prior), expected, 0.25 * expected) << "alpha " << alpha;
    EXPECT_NEAR(mean_sum_of_squares(tables.context), expected, 0.5 * expected) << "alpha " << alpha;
  }
}

TEST(SolutionTree, TablesDependOnTreeSeedOnly) {
  const auto a = tables_of(kNone, 0);
  const auto b = tables_of({{"eval_seed", int64_t{9}}, {"batch_size", int64_t{3}}}, 77);
  EXPECT_EQ(a.T, b.T);
  EXPECT_EQ(a.prior, b.prior);
  EXPECT_EQ(a.PT, b.PT);
  EXPECT_EQ(a.context, b.context);
  const auto c = tables_of({{"tree_seed", int64_t{1}}});
  EXPECT_NE(a.T, c.T);
  EXPECT_NE(a.prior, c.prior);
  EXPECT_NE(a.PT, c.PT);
  EXPECT_NE(a.context, c.context);
  // Each table has a stream of its own: the concentrations change the Dirichlet rows only.
  const auto d = tables_of({{"prior_alpha", 2.0}});
  EXPECT_EQ(a.T, d.T);
  EXPECT_EQ(a.PT, d.PT);
  EXPECT_EQ(a.context, d.context);
  EXPECT_NE(a.prior, d.prior);
}

// ---- Examples and batches ----

TEST(SolutionTree, ExamplesFollowTheTablesAndHaveTheExactFormat) {
  const auto tables = tables_of(kNone);
  const auto vocab = vocabulary();
  auto t = task(kNone);
  EXPECT_EQ(t->shape().vocab_size, 29);
  EXPECT_EQ(t->shape().num_classes, 29);
  EXPECT_EQ(t->shape().input_length, 65 + 43 - 1);
  for (const auto& split : t->eval_splits()) {
    auto batch = t->eval_batch(split);
    ASSERT_EQ(batch.inputs.size(1), 107) << split;
    ASSERT_EQ(batch.targets.sizes(), batch.inputs.sizes()) << split;
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) check_row(batch, r, tables, vocab);
  }
  std::set<size_t> lengths;
  for (int64_t step = 0; step < 10; ++step) {
    auto batch = t->train_batch(step);
    ASSERT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{64, 107}));
    for (int64_t r = 0; r < 64; ++r) lengths.insert(check_row(batch, r, tables, vocab).actions.size());
  }
  EXPECT_EQ(lengths, (std::set<size_t>{5, 6, 7, 8, 9, 10}));
  // One literal example, for the reader, built by hand from the tables: s0 = 3, p0 = 7, actions 4 then 11.
  const auto p1 = static_cast<int>(tables.PT[7][4]), p2 = static_cast<int>(tables.PT[static_cast<size_t>(p1)][11]);
  const auto s1 = static_cast<int>(tables.T[3][4]), s2 = static_cast<int>(tables.T[static_cast<size_t>(s1)][11]);
  const std::string prompt = "S 3 P 7 C 0 P " + std::to_string(p1) + " C 19 P " + std::to_string(p2) +
                             " I 1 I 2 I 3 I 4 I 5 I 6 I 7 I 8 I 9 I 10 :";
  const std::string answer = "S 3 A 4 S " + std::to_string(s1) + " A 11 S " + std::to_string(s2) + " <pad>";
  const Verdict v = t->score(vocab.encode(words(prompt)), vocab.encode(words(answer)));
  EXPECT_TRUE(v.correct) << prompt << " | " << answer;
}

TEST(SolutionTree, TrainingBatchesArePureFunctionsOfSeedAndStep) {
  auto t = task(kNone, 3);
  auto first = t->train_batch(7);
  t->train_batch(8);
  EXPECT_TRUE(torch::equal(t->train_batch(7).inputs, first.inputs));
  EXPECT_TRUE(torch::equal(task(kNone, 3)->train_batch(7).targets, first.targets));
  EXPECT_FALSE(torch::equal(t->train_batch(8).inputs, first.inputs));
  EXPECT_FALSE(torch::equal(task(kNone, 4)->train_batch(7).inputs, first.inputs));
  // The tables, not only the draws, change with tree_seed.
  EXPECT_FALSE(torch::equal(task({{"tree_seed", int64_t{5}}}, 3)->train_batch(7).targets, first.targets));
}

TEST(SolutionTree, LossOnPromptScoresThePromptToo) {
  auto plain = task(kNone, 2)->train_batch(4);
  auto full = task({{"loss_on_prompt", true}}, 2)->train_batch(4);
  ASSERT_TRUE(torch::equal(plain.inputs, full.inputs));
  for (int64_t r = 0; r < 64; ++r) {
    const auto inputs = to_vector(plain.inputs[r]), a = to_vector(plain.targets[r]), b = to_vector(full.targets[r]);
    const auto prompt_length = example_row(plain, r).prompt.size();
    for (size_t t = 0; t < a.size(); ++t) {
      if (t + 1 < prompt_length) {
        EXPECT_EQ(a[t], -100);
        EXPECT_EQ(b[t], inputs[t + 1]) << "row " << r << " position " << t;
      } else {
        EXPECT_EQ(b[t], a[t]) << "row " << r << " position " << t;
      }
    }
  }
  // Eval batches stay answer-only (so that exact_match is the completion's).
  auto t = task({{"loss_on_prompt", true}});
  EXPECT_TRUE(torch::equal(t->eval_batch("test").targets, task(kNone)->eval_batch("test").targets));
}

TEST(SolutionTree, EvalSetsDependOnEvalSeedAndTreeOnly) {
  auto a = task(kNone, 0), b = task(kNone, 99);
  EXPECT_EQ(a->eval_splits(), (std::vector<std::string>{"train", "train_rl", "test"}));
  for (const auto& split : a->eval_splits()) {
    EXPECT_TRUE(torch::equal(a->eval_batch(split).inputs, b->eval_batch(split).inputs)) << split;
    EXPECT_TRUE(torch::equal(a->eval_batch(split).targets, b->eval_batch(split).targets)) << split;
    EXPECT_TRUE(torch::equal(a->eval_prompts(split).tokens, b->eval_prompts(split).tokens)) << split;
  }
  EXPECT_EQ(a->eval_batch("train").inputs.size(0), 512);
  EXPECT_EQ(a->eval_batch("train_rl").inputs.size(0), 128);
  EXPECT_EQ(a->eval_batch("test").inputs.size(0), 512);
  auto other = task({{"eval_seed", int64_t{5}}});
  for (const auto& split : a->eval_splits()) {
    EXPECT_FALSE(torch::equal(a->eval_batch(split).inputs, other->eval_batch(split).inputs)) << split;
  }
  EXPECT_FALSE(torch::equal(a->eval_batch("train_rl").inputs, a->eval_batch("test").inputs.slice(0, 0, 128)));
  auto sized = task({{"train_eval_size", int64_t{3}}, {"train_rl_size", int64_t{4}}, {"test_size", int64_t{5}}});
  EXPECT_EQ(sized->eval_batch("train").inputs.size(0), 3);
  EXPECT_EQ(sized->eval_batch("train_rl").inputs.size(0), 4);
  EXPECT_EQ(sized->eval_batch("test").inputs.size(0), 5);
  // The first problems of a larger split are those of a smaller one.
  EXPECT_TRUE(torch::equal(sized->eval_batch("test").inputs, a->eval_batch("test").inputs.slice(0, 0, 5)));
  EXPECT_THROW(a->eval_batch("id"), std::invalid_argument);
  EXPECT_THROW(a->eval_prompts("ood"), std::invalid_argument);
}

// Mean over the problems' steps of prior[s_i][a_i] and of context[a_i][c_i]: E = sum p^2 (0.19 for Dirichlet
// 0.3 rows) when actions follow the prior and contexts the spurious table, exactly 1/20 when they are uniform.
struct Bias {
  double prior = 0, context = 0;
  std::vector<std::vector<double>> counts;  // [state][action]
};

Bias bias_of(const std::vector<Parsed>& problems, const Tables& tables) {
  Bias b;
  b.counts.assign(20, std::vector<double>(20, 0));
  double steps = 0;
  for (const auto& q : problems) {
    for (size_t i = 0; i < q.actions.size(); ++i) {
      const auto s = static_cast<size_t>(q.states[i]), a = static_cast<size_t>(q.actions[i]);
      b.prior += tables.prior[s][a];
      b.context += tables.context[a][static_cast<size_t>(q.contexts[i])];
      b.counts[s][a] += 1;
      steps += 1;
    }
  }
  b.prior /= steps;
  b.context /= steps;
  return b;
}

std::vector<Parsed> problems_of(const PromptBatch& prompts, const Tables& tables, const Vocabulary& vocab) {
  std::vector<Parsed> out;
  for (int64_t r = 0; r < prompts.tokens.size(0); ++r) {
    out.push_back(parse_prompt(vocab.decode(to_vector(prompts.tokens[r].slice(0, 0, prompts.lengths[r].item<int64_t>()))), tables));
  }
  return out;
}

TEST(SolutionTree, TrainingFollowsThePriorAndTestIsUniform) {
  const auto tables = tables_of(kNone);
  const auto vocab = vocabulary();
  auto t = task(kNone);
  std::vector<Parsed> sft;
  for (int64_t step = 0; step < 150; ++step) {
    auto batch = t->train_batch(step);
    for (int64_t r = 0; r < 64; ++r) sft.push_back(parse_prompt(vocab.decode(example_row(batch, r).prompt), tables));
  }
  const double concentrated = mean_sum_of_squares(tables.prior), uniform = 1.0 / 20;
  const Bias train = bias_of(sft, tables);
  // Per state, the actions taken follow prior[s]: total variation of the empirical distribution (about 3000
  // steps per state visited) from the prior.
  double variation = 0, visited = 0;
  for (size_t s = 0; s < 20; ++s) {
    double n = 0, tv = 0;
    for (double c : train.counts[s]) n += c;
    if (n < 500) continue;
    for (size_t a = 0; a < 20; ++a) tv += std::abs(train.counts[s][a] / n - tables.prior[s][a]) / 2;
    variation += tv;
    visited += 1;
  }
  ASSERT_GT(visited, 5);
  EXPECT_LT(variation / visited, 0.04);
  EXPECT_GT(train.prior, 0.1);
  EXPECT_GT(train.context, 0.1);
  const Bias train_split = bias_of(problems_of(t->eval_prompts("train"), tables, vocab), tables);
  EXPECT_GT(train_split.prior, 0.1);
  EXPECT_GT(train_split.context, 0.1);
  // Uniform: fresh RL prompts (many), and the fixed train_rl and test splits.
  auto fresh = task({{"rl_prompts", std::string("fresh")}});
  std::vector<Parsed> rl;
  for (int64_t step = 0; step < 100; ++step) {
    auto more = problems_of(fresh->train_prompts(step, 64), tables, vocab);
    rl.insert(rl.end(), more.begin(), more.end());
  }
  const Bias uniform_rl = bias_of(rl, tables);
  EXPECT_NEAR(uniform_rl.prior, uniform, 0.01);
  EXPECT_NEAR(uniform_rl.context, uniform, 0.01);
  std::vector<double> histogram(20, 0);
  double steps = 0;
  for (const auto& row : uniform_rl.counts) {
    for (size_t a = 0; a < 20; ++a) histogram[a] += row[a], steps += row[a];
  }
  for (double c : histogram) EXPECT_NEAR(c / steps, uniform, 0.01);
  for (const char* split : {"test", "train_rl"}) {
    const Bias b = bias_of(problems_of(t->eval_prompts(split), tables, vocab), tables);
    EXPECT_NEAR(b.prior, uniform, 0.025) << split;
    EXPECT_NEAR(b.context, uniform, 0.025) << split;
  }
  EXPECT_NEAR(train.prior, concentrated, 0.05);  // visits weight the states' sum p^2 unevenly
}

// ---- Verifiable task: prompts, score, completion format ----

std::vector<int64_t> prompt_row(const PromptBatch& prompts, int64_t r) {
  return to_vector(prompts.tokens[r].slice(0, 0, prompts.lengths[r].item<int64_t>()));
}

void expect_wrong(Task& t, const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion, const std::string& what) {
  Verdict v{-1, true};
  EXPECT_NO_THROW(v = t.score(prompt, completion)) << what;
  EXPECT_EQ(v.reward, 0.0) << what;
  EXPECT_FALSE(v.correct) << what;
}

void expect_right(Task& t, const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion, const std::string& what) {
  const Verdict v = t.score(prompt, completion);
  EXPECT_EQ(v.reward, 1.0) << what;
  EXPECT_TRUE(v.correct) << what;
}

TEST(SolutionTree, EvalPromptsAreThePromptsOfTheEvalBatches) {
  auto t = task(kNone);
  const auto vocab = vocabulary();
  for (const auto& split : t->eval_splits()) {
    auto prompts = t->eval_prompts(split);
    auto batch = t->eval_batch(split);
    ASSERT_EQ(prompts.tokens.size(0), batch.inputs.size(0)) << split;
    EXPECT_EQ(prompts.tokens.scalar_type(), torch::kLong);
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
      const auto expected = example_row(batch, r).prompt;
      EXPECT_EQ(prompt_row(prompts, r), expected) << split << " row " << r;
      EXPECT_EQ(vocab.symbol(expected.back()), ":");
    }
    EXPECT_EQ(prompts.tokens.size(1), prompts.lengths.max().item<int64_t>());
  }
}

TEST(SolutionTree, TrainPromptsAreTheTrainRlProblemsShuffledPerEpoch) {
  auto t = task(kNone, 3);
  auto first = t->train_prompts(7, 32);
  t->train_batch(7);
  t->train_prompts(8, 32);
  EXPECT_TRUE(torch::equal(t->train_prompts(7, 32).tokens, first.tokens));
  EXPECT_TRUE(torch::equal(task(kNone, 3)->train_prompts(7, 32).tokens, first.tokens));
  EXPECT_FALSE(torch::equal(task(kNone, 4)->train_prompts(7, 32).tokens, first.tokens));
  EXPECT_FALSE(torch::equal(t->train_prompts(8, 32).tokens, first.tokens));
  // Four steps of 32 prompts are one epoch: every train_rl problem exactly once; the next epoch another order.
  auto split = t->eval_prompts("train_rl");
  std::map<std::vector<int64_t>, int> rows;
  for (int64_t r = 0; r < 128; ++r) rows[prompt_row(split, r)] = 0;
  ASSERT_EQ(rows.size(), 128u);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<std::vector<int64_t>> order;
    for (int64_t step = 4 * epoch; step < 4 * epoch + 4; ++step) {
      auto prompts = t->train_prompts(step, 32);
      for (int64_t r = 0; r < 32; ++r) {
        auto row = prompt_row(prompts, r);
        ASSERT_TRUE(rows.contains(row)) << "step " << step << " row " << r << " is not a train_rl problem";
        rows[row] += 1;
        order.push_back(row);
      }
    }
    for (const auto& [row, seen] : rows) EXPECT_EQ(seen, epoch + 1);
    std::vector<std::vector<int64_t>> in_split;
    for (int64_t r = 0; r < 128; ++r) in_split.push_back(prompt_row(split, r));
    EXPECT_NE(order, in_split) << "epoch " << epoch << " is not shuffled";
  }
  // Counts that straddle epochs: prompts 100..199 are the end of epoch 0 and the start of epoch 1.
  auto straddling = t->train_prompts(1, 100), epoch0 = t->train_prompts(0, 128), epoch1 = t->train_prompts(1, 128);
  for (int64_t r = 0; r < 28; ++r) EXPECT_EQ(prompt_row(straddling, r), prompt_row(epoch0, 100 + r));
  for (int64_t r = 28; r < 100; ++r) EXPECT_EQ(prompt_row(straddling, r), prompt_row(epoch1, r - 28));
  EXPECT_THROW(t->train_prompts(0, 0), std::invalid_argument);
}

TEST(SolutionTree, FreshTrainPromptsArePureFunctionsOfSeedAndStep) {
  const Values fresh = {{"rl_prompts", std::string("fresh")}};
  auto t = task(fresh, 3);
  auto first = t->train_prompts(7, 16);
  ASSERT_EQ(first.tokens.size(0), 16);
  t->train_prompts(8, 16);
  EXPECT_TRUE(torch::equal(t->train_prompts(7, 16).tokens, first.tokens));
  EXPECT_TRUE(torch::equal(task(fresh, 3)->train_prompts(7, 16).lengths, first.lengths));
  EXPECT_FALSE(torch::equal(t->train_prompts(8, 16).tokens, first.tokens));
  EXPECT_FALSE(torch::equal(task(fresh, 4)->train_prompts(7, 16).tokens, first.tokens));
  auto five = t->train_prompts(7, 5);
  EXPECT_TRUE(torch::equal(five.lengths, first.lengths.slice(0, 0, 5)));
  for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(prompt_row(five, r), prompt_row(first, r));
  // Scored right with the completions the tables give.
  const auto tables = tables_of(kNone);
  const auto vocab = vocabulary();
  for (int64_t r = 0; r < 16; ++r) {
    const auto prompt = prompt_row(first, r);
    const auto q = parse_prompt(vocab.decode(prompt), tables);
    expect_right(*t, prompt, vocab.encode(words(completion_text(q))), vocab.decode(prompt));
  }
}

TEST(SolutionTree, ScoreAcceptsTheTrueAnswerOfEveryExample) {
  auto t = task(kNone);
  for (const auto& split : t->eval_splits()) {
    auto prompts = t->eval_prompts(split);
    auto batch = t->eval_batch(split);
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
      expect_right(*t, prompt_row(prompts, r), example_row(batch, r).answer, split + " row " + std::to_string(r));
    }
  }
  auto batch = t->train_batch(0);
  for (int64_t r = 0; r < 64; ++r) {
    const auto e = example_row(batch, r);
    expect_right(*t, e.prompt, e.answer, "train_batch row " + std::to_string(r));
  }
}

TEST(SolutionTree, ScoreRejectsWrongCompletions) {
  auto t = task(kNone);
  const auto tables = tables_of(kNone);
  const int64_t pad = 2, S = 4, A = 7, max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  for (const auto& split : t->eval_splits()) {
    auto batch = t->eval_batch(split);
    for (int64_t r = 0; r < 40; ++r) {
      const auto e = example_row(batch, r);
      const auto& answer = e.answer;
      ASSERT_EQ(answer.back(), pad);
      const std::string where = split + " row " + std::to_string(r) + ": ";
      auto changed = [&](auto edit) {
        auto c = answer;
        edit(c);
        return c;
      };
      auto next = [](int64_t id) { return 9 + (id - 9 + 1) % 20; };
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c[3] = next(c[3]); }), where + "first action changed");
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c[c.size() - 2] = next(c[c.size() - 2]); }), where + "last state changed");
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c[1] = next(c[1]); }), where + "start state changed");
      // A different first action, executed correctly: a consistent but wrong plan.
      expect_wrong(*t, e.prompt, changed([&](auto& c) {
                     c[3] = next(c[3]);
                     c[5] = 9 + static_cast<int64_t>(tables.T[static_cast<size_t>(c[1] - 9)][static_cast<size_t>(c[3] - 9)]);
                   }),
                   where + "another first action, executed");
      expect_wrong(*t, e.prompt, changed([](auto& c) { c.pop_back(); }), where + "no <pad>");
      expect_wrong(*t, e.prompt, changed([](auto& c) { c.back() = 0; }), where + "<unk> for <pad>");
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c.push_back(pad); }), where + "padding after <pad>");
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c.insert(c.end() - 1, {A, c[3], S, c[c.size() - 2]}); }), where + "one step too many");
      expect_wrong(*t, e.prompt, changed([](auto& c) { c.erase(c.end() - 5, c.end() - 1); }), where + "one step too few");
      expect_wrong(*t, e.prompt, changed([](auto& c) { std::swap(c[0], c[2]); }), where + "markers swapped");
      expect_wrong(*t, e.prompt, changed([&](auto& c) { c.insert(c.begin(), e.prompt.begin(), e.prompt.end()); }),
                   where + "the prompt repeated");
      expect_wrong(*t, e.prompt, {}, where + "empty");
      expect_wrong(*t, e.prompt, {pad}, where + "only <pad>");
      for (int64_t garbage : {int64_t{-1}, int64_t{-100}, int64_t{29}, int64_t{1000000}, max, min}) {
        expect_wrong(*t, e.prompt, {garbage}, where + "garbage " + std::to_string(garbage));
        expect_wrong(*t, e.prompt, changed([&](auto& c) { c[1] = garbage; }), where + "garbage in the answer");
      }
    }
  }
}

TEST(SolutionTree, ScoreOfMalformedPromptsIsWrongAndNeverThrows) {
  auto t = task(kNone);
  const auto vocab = vocabulary();
  const auto tables = tables_of(kNone);
  auto prompts = t->eval_prompts("test");
  auto batch = t->eval_batch("test");
  const auto prompt = prompt_row(prompts, 0), answer = example_row(batch, 0).answer;
  expect_right(*t, prompt, answer, "the well-formed prompt");
  // A step (p, p') no action takes: only possible with fewer actions than problem states.
  const int64_t max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  auto edited = [&](auto edit) {
    auto p = prompt;
    edit(p);
    return p;
  };
  const std::vector<std::pair<std::string, std::vector<int64_t>>> malformed = {
      {"empty", {}},
      {"only :", {3}},
      {"no :", edited([](auto& p) { p.pop_back(); })},
      {"padded", edited([](auto& p) { p.push_back(2); })},
      {"<bos> first", edited([](auto& p) { p.insert(p.begin(), 1); })},
      {"a token after :", edited([](auto& p) { p.push_back(9); })},
      {"one irrelevant token too few", edited([](auto& p) { p.erase(p.end() - 3, p.end() - 1); })},
      {"one irrelevant token too many", edited([](auto& p) { p.insert(p.end() - 1, {8, 9}); })},
      {"no C and P steps", edited([](auto& p) { p.erase(p.begin() + 4, p.end() - 21); })},
      {"a C without its P", edited([](auto& p) { p.erase(p.end() - 23, p.end() - 21); })},
      {"P for S", edited([](auto& p) { p[0] = 5; })},
      {"I for C", edited([](auto& p) { p[4] = 8; })},
      {"state 20 (out of range)", edited([](auto& p) { p[1] = 29; })},
      {"a marker for a number", edited([](auto& p) { p[3] = 4; })},
      {"a negative id", edited([](auto& p) { p[3] = -1; })},
      {"huge id", edited([&](auto& p) { p[5] = max; })},
      {"lowest id", edited([&](auto& p) { p[1] = min; })},
      {"huge marker", edited([&](auto& p) { p[0] = max; })},
  };
  for (const auto& [what, bad] : malformed) {
    expect_wrong(*t, bad, answer, what);
    expect_wrong(*t, bad, {}, what + ", empty completion");
    expect_wrong(*t, bad, {2}, what + ", <pad>");
  }
  // An unreachable step (p, p'): with 5 actions over 20 problem states most pairs are.
  const Values narrow = {{"num_actions", int64_t{5}}};
  auto n = task(narrow);
  const auto narrow_tables = tables_of(narrow);
  auto good = prompt_row(n->eval_prompts("test"), 0);
  const auto good_answer = example_row(n->eval_batch("test"), 0).answer;
  expect_right(*n, good, good_answer, "narrow, well-formed");
  const auto p0 = static_cast<size_t>(good[3] - 9);
  int64_t unreachable = -1;
  for (int64_t q = 0; q < 20 && unreachable < 0; ++q) {
    if (std::find(narrow_tables.PT[p0].begin(), narrow_tables.PT[p0].end(), static_cast<double>(q)) == narrow_tables.PT[p0].end()) {
      unreachable = q;
    }
  }
  ASSERT_GE(unreachable, 0);
  good[7] = 9 + unreachable;
  expect_wrong(*n, good, good_answer, "an unreachable step");
  // Any number of steps is judged, not only 5..10: one step, built by hand.
  const auto p1 = static_cast<int>(tables.PT[2][6]), s1 = static_cast<int>(tables.T[1][6]);
  std::string one = "S 1 P 2 C 3 P " + std::to_string(p1);
  for (int j = 0; j < 10; ++j) one += " I 0";
  expect_right(*t, vocab.encode(words(one + " :")), vocab.encode(words("S 1 A 6 S " + std::to_string(s1) + " <pad>")), "one step");
  // Random token sequences, in and around the vocabulary: no throw, and reward 1 exactly when correct.
  SplitMix64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<int64_t> p = prompt, c = answer;
    const int edits = static_cast<int>(rng.uniform(1, 4));
    for (int k = 0; k < edits; ++k) {
      auto& target = rng.uniform(0, 1) ? p : c;
      const int64_t id = i % 3 ? rng.uniform(0, 28) : rng.uniform(-3, 32);
      switch (rng.uniform(0, 2)) {
        case 0:
          if (!target.empty()) target[static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(target.size()) - 1))] = id;
          break;
        case 1:
          target.insert(target.begin() + rng.uniform(0, static_cast<int64_t>(target.size())), id);
          break;
        default:
          if (!target.empty()) target.erase(target.begin() + rng.uniform(0, static_cast<int64_t>(target.size()) - 1));
      }
    }
    Verdict v;
    ASSERT_NO_THROW(v = t->score(p, c));
    ASSERT_TRUE(v.reward == 0.0 || v.reward == 1.0);
    ASSERT_EQ(v.reward == 1.0, v.correct);
    if (v.correct && p != prompt) {
      // Right only if the prompt still holds a problem whose answer is c (an edited context or irrelevant number).
      ASSERT_EQ(vocab.decode(c), completion_text(parse_prompt(vocab.decode(p), tables))) << vocab.decode(p);
    }
    if (p == prompt) ASSERT_EQ(v.correct, c == answer);
  }
}

TEST(SolutionTree, CompletionFormatStopsAtPadAndFitsTheLongestAnswer) {
  auto t = task(kNone);
  auto format = t->completion_format();
  EXPECT_EQ(format.stop_tokens, (std::vector<int64_t>{2}));
  EXPECT_EQ(format.pad_token, 2);
  EXPECT_EQ(format.max_new_tokens, 4 * 10 + 3);
  int64_t longest = 0;
  for (const auto& split : t->eval_splits()) {
    auto batch = t->eval_batch(split);
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) {
      longest = std::max(longest, static_cast<int64_t>(example_row(batch, r).answer.size()));
    }
  }
  EXPECT_EQ(longest, format.max_new_tokens);  // 1152 problems: 10 actions occur
  auto small = task({{"min_actions", int64_t{2}}, {"max_actions", int64_t{3}}, {"num_irrelevant", int64_t{0}}});
  EXPECT_EQ(small->completion_format().max_new_tokens, 15);
  EXPECT_EQ(small->shape().input_length, (4 * 3 + 5) + 15 - 1);
}

// ---- Answer details: plan and execution ----

AnswerDetails& details_of(Task& t) {
  Context context;
  context.task = &t;
  return answer_details_task(context, "solution_tree_test");
}

// (plan, execution) of a completion.
std::pair<int, int> checks_of(Task& t, const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) {
  AnswerDetail d;
  EXPECT_NO_THROW(d = details_of(t).answer_details(prompt, completion));
  EXPECT_EQ(d.form, -1);
  EXPECT_EQ(d.checks.size(), 2u);
  if (d.checks.size() != 2) return {-2, -2};
  return {d.checks[0], d.checks[1]};
}

// What a completion writes when it is "S s (A a S s)* <pad>" with numbers below 20 (the test's own reading).
std::optional<Parsed> read_completion(const std::vector<int64_t>& c) {
  auto number = [&](size_t at) { return at < c.size() && c[at] >= 9 && c[at] < 29 ? static_cast<int>(c[at] - 9) : -1; };
  Parsed q;
  if (c.size() < 3 || c.size() % 4 != 3 || c.back() != 2) return std::nullopt;
  for (size_t at = 0; at + 1 < c.size(); at += 2) {
    const bool state = at % 4 == 0;
    if (c[at] != (state ? 4 : 7) || number(at + 1) < 0) return std::nullopt;
    (state ? q.states : q.actions).push_back(number(at + 1));
  }
  return q;
}

TEST(SolutionTree, AnswerChecksArePlanAndExecutionWithoutForms) {
  auto t = task(kNone);
  EXPECT_EQ(details_of(*t).answer_checks(), (std::vector<std::string>{"plan", "execution"}));
  EXPECT_TRUE(details_of(*t).answer_forms().empty());
}

TEST(SolutionTree, AnswerDetailsSeparatePlanFromExecution) {
  auto t = task(kNone);
  const auto tables = tables_of(kNone);
  const int64_t pad = 2, S = 4, A = 7;
  auto T = [&](int64_t s, int64_t a) { return 9 + static_cast<int64_t>(tables.T[static_cast<size_t>(s - 9)][static_cast<size_t>(a - 9)]); };
  auto next = [](int64_t id) { return 9 + (id - 9 + 1) % 20; };
  // Executes the actions of answer `c` through T from its first state (answer layout: S s A a S s ... <pad>).
  auto executed = [&](std::vector<int64_t> c) {
    for (size_t i = 5; i < c.size(); i += 4) c[i] = T(c[i - 4], c[i - 2]);
    return c;
  };
  using Checks = std::pair<int, int>;
  for (const auto& split : t->eval_splits()) {
    auto batch = t->eval_batch(split);
    for (int64_t r = 0; r < 40; ++r) {
      const auto e = example_row(batch, r);
      const auto& answer = e.answer;
      const std::string where = split + " row " + std::to_string(r) + ": ";
      auto changed = [&](auto edit) {
        auto c = answer;
        edit(c);
        return c;
      };
      EXPECT_EQ(checks_of(*t, e.prompt, answer), Checks(1, 1)) << where << "the true answer";
      EXPECT_EQ(checks_of(*t, e.prompt, executed(changed([&](auto& c) { c[3] = next(c[3]); }))), Checks(0, 1))
          << where << "another first action, executed";
      EXPECT_EQ(checks_of(*t, e.prompt, executed(changed([&](auto& c) { c[c.size() - 4] = next(c[c.size() - 4]); }))), Checks(0, 1))
          << where << "another last action, executed";
      EXPECT_EQ(checks_of(*t, e.prompt, changed([&](auto& c) { c[c.size() - 2] = next(c[c.size() - 2]); })), Checks(1, 0))
          << where << "the right plan, last state wrong";
      EXPECT_EQ(checks_of(*t, e.prompt, changed([&](auto& c) { c[1] = next(c[1]); })), Checks(1, 0))
          << where << "the right plan from a wrong start state";
      EXPECT_EQ(checks_of(*t, e.prompt, executed(changed([&](auto& c) { c[1] = next(c[1]); }))), Checks(1, 0))
          << where << "the right plan executed from a wrong start state";
      const int first_state_right = T(answer[1], next(answer[3])) == answer[5];
      EXPECT_EQ(checks_of(*t, e.prompt, changed([&](auto& c) { c[3] = next(c[3]); })), Checks(0, first_state_right))
          << where << "another first action, the true states";
      EXPECT_EQ(checks_of(*t, e.prompt, changed([](auto& c) { c.erase(c.end() - 5, c.end() - 1); })), Checks(0, 1))
          << where << "one step too few";
      EXPECT_EQ(checks_of(*t, e.prompt, changed([&](auto& c) { c.insert(c.end() - 1, {A, 12, S, T(c[c.size() - 2], 12)}); })),
                Checks(0, 1))
          << where << "one step too many, executed";
      EXPECT_EQ(checks_of(*t, e.prompt, {S, answer[1], pad}), Checks(0, 1)) << where << "no step";
      for (const auto& [what, garbage] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
               {"empty", {}},
               {"only <pad>", {pad}},
               {"no <pad>", changed([](auto& c) { c.pop_back(); })},
               {"padding after <pad>", changed([&](auto& c) { c.push_back(pad); })},
               {"ends after an action", changed([&](auto& c) { c.erase(c.end() - 3, c.end() - 1); })},
               {"markers swapped", changed([](auto& c) { std::swap(c[0], c[2]); })},
               {"a number for a marker", changed([](auto& c) { c[2] = 9; })},
               {"<unk> for a number", changed([](auto& c) { c[3] = 0; })},
               {"id past the vocabulary", changed([](auto& c) { c[3] = 29; })},
               {"negative id", changed([](auto& c) { c[1] = -1; })},
               {"the prompt repeated", changed([&](auto& c) { c.insert(c.begin(), e.prompt.begin(), e.prompt.end()); })}}) {
        EXPECT_EQ(checks_of(*t, e.prompt, garbage), Checks(-1, -1)) << where << what;
      }
      EXPECT_EQ(checks_of(*t, std::vector<int64_t>(e.prompt.begin(), e.prompt.end() - 1), answer), Checks(-1, -1))
          << where << "a prompt without :";
    }
  }
  // Numbers are read in their own ranges: with 5 actions, "A 7" is no plan.
  const Values narrow = {{"num_actions", int64_t{5}}};
  auto n = task(narrow);
  const auto e = example_row(n->eval_batch("test"), 0);
  EXPECT_EQ(checks_of(*n, e.prompt, e.answer), Checks(1, 1));
  auto far = e.answer;
  far[3] = 9 + 7;
  EXPECT_EQ(checks_of(*n, e.prompt, far), Checks(-1, -1));
}

// On random edits of a prompt and its answer: never throws, both checks pass exactly when score says correct,
// and on the unedited prompt the checks are what the test's own reading of the completion gives.
TEST(SolutionTree, AnswerDetailsAgreeWithScore) {
  auto t = task(kNone);
  const auto vocab = vocabulary();
  const auto tables = tables_of(kNone);
  const auto prompt = prompt_row(t->eval_prompts("test"), 3), answer = example_row(t->eval_batch("test"), 3).answer;
  const Parsed truth = parse_prompt(vocab.decode(prompt), tables);
  SplitMix64 rng(7);
  int counts[3][3] = {};
  for (int i = 0; i < 20000; ++i) {
    std::vector<int64_t> p = prompt, c = answer;
    const int edits = static_cast<int>(rng.uniform(1, 3));
    for (int k = 0; k < edits; ++k) {
      auto& target = rng.uniform(0, 3) ? c : p;
      const int64_t id = i % 3 ? rng.uniform(9, 28) : rng.uniform(-3, 32);
      const auto at = [&](int64_t extra) { return rng.uniform(0, static_cast<int64_t>(target.size()) - 1 + extra); };
      switch (rng.uniform(0, 2)) {
        case 0:
          if (!target.empty()) target[static_cast<size_t>(at(0))] = id;
          break;
        case 1:
          target.insert(target.begin() + at(1), id);
          break;
        default:
          if (!target.empty()) target.erase(target.begin() + at(0));
      }
    }
    const auto [plan, execution] = checks_of(*t, p, c);
    ASSERT_TRUE(plan >= -1 && plan <= 1 && execution >= -1 && execution <= 1) << plan << " " << execution;
    ASSERT_EQ(plan == 1 && execution == 1, t->score(p, c).correct) << vocab.decode(p) << " | " << vocab.decode(c);
    if (p != prompt) continue;
    counts[plan + 1][execution + 1] += 1;
    const auto read = read_completion(c);
    if (!read) {
      ASSERT_EQ(std::make_pair(plan, execution), std::make_pair(-1, -1)) << vocab.decode(c);
      continue;
    }
    bool consistent = read->states[0] == truth.states[0];
    for (size_t k = 0; k < read->actions.size(); ++k) {
      const auto s = static_cast<size_t>(read->states[k]), a = static_cast<size_t>(read->actions[k]);
      consistent = consistent && read->states[k + 1] == static_cast<int>(tables.T[s][a]);
    }
    ASSERT_EQ(plan, read->actions == truth.actions ? 1 : 0) << vocab.decode(c);
    ASSERT_EQ(execution, consistent ? 1 : 0) << vocab.decode(c);
  }
  for (int plan : {0, 1}) {
    for (int execution : {0, 1}) EXPECT_GT(counts[plan + 1][execution + 1], 0) << "no completion with checks " << plan << " " << execution;
  }
  EXPECT_GT(counts[0][0], 0);
}

void expect_rejected(const Values& changes, const std::string& fragment) {
  try {
    task(changes);
    FAIL() << "accepted; expected an error mentioning '" << fragment << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(SolutionTree, BadOptionsAreRejectedWithTheKey) {
  expect_rejected({{"min_actions", int64_t{6}}, {"max_actions", int64_t{5}}}, "min_actions");
  expect_rejected({{"num_actions", int64_t{21}}}, "num_problem_states");
  expect_rejected({{"rl_prompts", std::string("uniform")}}, "rl_prompts");
  expect_rejected({{"prior_alpha", 0.0}}, "prior_alpha");
  expect_rejected({{"context_alpha", -1.0}}, "context_alpha");
}

}  // namespace
}  // namespace assay
