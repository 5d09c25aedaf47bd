#include <assay/answer_details.hpp>
#include <assay/rollout.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>

#include "test_support.hpp"

namespace assay {
namespace {

// Echo problems (prompt t = j % 5) with checks for one-token answers k: plan = [k == t] and execution =
// [k <= t], both -1 (malformed) for k = 4; correct when both are 1. The checks are named out of order (and
// with one more) so that the analyzer must find them by name.
class CheckStub : public testing::EchoTask, public AnswerDetails {
 public:
  std::vector<std::string> checks = {"style", "execution", "plan"};
  std::vector<std::string> answer_checks() const override { return checks; }
  AnswerDetail answer_details(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    if (completion.size() != 1 || completion[0] == 4) return {-1, {1, -1, -1}};
    const int64_t t = prompt.at(0), k = completion[0];
    return {-1, {1, static_cast<int8_t>(k <= t), static_cast<int8_t>(k == t)}};
  }
  Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const auto d = answer_details(prompt, completion);
    const bool right = d.checks[1] == 1 && d.checks[2] == 1;
    return {right ? 1.0 : 0.0, right};
  }
};

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
  return testing::plugins().create<Analyzer>("plan_execute", testing::values_of(Kind::analyzer, "plan_execute", overrides), context);
}

// Greedy answers 0, 3, 0, 2, 4 to prompts 0..4 (100 problems each): (plan, execution) = (1, 1), (0, 0),
// (0, 1), (0, 1), (-1, -1).
TEST(PlanExecute, GreedySharesAreExact) {
  CheckStub task;
  testing::BigramModel model(table({{3, 0, 0, 0, 0}, {0, 0, 0, 3, 0}, {3, 0, 0, 0, 0}, {0, 0, 3, 0, 0}, {0, 0, 0, 0, 3}}));
  testing::MemoryRecorder recorder;
  analyzer(task, model, recorder, {})->on_eval(4);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.plan_accuracy"), 0.2);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_accuracy"), 0.6);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.exact"), 0.2);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_given_plan"), 1.0);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_given_wrong_plan"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.plan_unjudged"), 0.2);
  EXPECT_EQ(recorder.metrics.at("eval.test.exact").front().first, 4);
  const auto& checks = recorder.rows.at("test.checks");
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_TRUE(torch::equal(checks[0].second, torch::tensor({100, 0, 0, 0, 100, 200, 0, 0, 100}, torch::kLong).view({3, 3})))
      << checks[0].second;
  // No plan right: execution_given_plan is not recorded.
  testing::BigramModel wrong(table({{0, 3, 0, 0, 0}, {3, 0, 0, 0, 0}, {3, 0, 0, 0, 0}, {3, 0, 0, 0, 0}, {3, 0, 0, 0, 0}}));
  testing::MemoryRecorder none;
  analyzer(task, wrong, none, {})->on_eval(0);
  EXPECT_DOUBLE_EQ(none.last("eval.test.plan_accuracy"), 0.0);
  EXPECT_DOUBLE_EQ(none.last("eval.test.execution_given_wrong_plan"), 0.8);  // 0 -> 1 is the one k > t
  EXPECT_FALSE(none.metrics.count("eval.test.execution_given_plan"));
}

// Sampled at temperature 1 (p_t = softmax(logits[t])), 500 problems x 8 samples: the closed forms within
// a few standard errors.
TEST(PlanExecute, SampledSharesMatchTheClosedForm) {
  const std::vector<std::vector<double>> logits = {{1.0, 0.2, 0.5, -0.3, 0.0},
                                                   {0.0, 1.2, 0.3, 0.8, -0.5},
                                                   {0.6, 0.0, 0.9, 0.1, 0.4},
                                                   {-0.2, 0.5, 0.0, 1.1, 0.7},
                                                   {0.3, 0.3, -0.4, 0.2, 1.0}};
  CheckStub task;
  testing::BigramModel model(table(logits));
  testing::MemoryRecorder recorder;
  analyzer(task, model, recorder, {{"samples", int64_t{8}}, {"temperature", 1.0}, {"batch", int64_t{40}}})->on_eval(0);
  double plan = 0, execution = 0, wrong_plan = 0, wrong_plan_executed = 0, unjudged = 0;
  for (size_t t = 0; t < 5; ++t) {
    auto p = torch::tensor(logits[t], torch::kDouble).softmax(0);
    for (size_t k = 0; k < 5; ++k) {
      const double q = p[static_cast<int64_t>(k)].item<double>() / 5;
      if (k == 4) {
        unjudged += q;
        continue;
      }
      plan += k == t ? q : 0;
      execution += k <= t ? q : 0;
      wrong_plan += k != t ? q : 0;
      wrong_plan_executed += k < t ? q : 0;
    }
  }
  EXPECT_NEAR(recorder.last("eval.test.plan_accuracy"), plan, 0.03);
  EXPECT_NEAR(recorder.last("eval.test.execution_accuracy"), execution, 0.03);
  EXPECT_NEAR(recorder.last("eval.test.exact"), plan, 0.03);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_given_plan"), 1.0);
  EXPECT_NEAR(recorder.last("eval.test.execution_given_wrong_plan"), wrong_plan_executed / wrong_plan, 0.04);
  EXPECT_NEAR(recorder.last("eval.test.plan_unjudged"), unjudged, 0.03);
}

TEST(PlanExecute, RejectsTasksWithoutPlanAndExecutionChecks) {
  testing::BigramModel model(torch::zeros({5, 5}));
  testing::MemoryRecorder recorder;
  auto expect_rejected = [&](Task& task, const std::string& fragment) {
    try {
      analyzer(task, model, recorder, {});
      FAIL() << "accepted; expected an error mentioning '" << fragment << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  testing::EchoTask plain;
  expect_rejected(plain, "AnswerDetails");
  CheckStub planless;
  planless.checks = {"style", "execution"};
  expect_rejected(planless, "style, execution");
  CheckStub unchecked;
  unchecked.checks = {};
  expect_rejected(unchecked, "none");
}

// ---- End to end on solution_tree ----

// A policy that writes a scripted completion of each prompt it knows (then <pad>), whatever the logits of a
// real model would say. It keeps the tokens it has seen in the KV cache (keys[0]: [B, tokens], values[0]: the
// prompt width), so it needs the sampler's cache.
class ScriptedPolicy : public Model {
 public:
  ScriptedPolicy(int64_t vocab, int64_t pad) : vocab_(vocab), pad_(pad) {}
  std::map<std::vector<int64_t>, std::vector<int64_t>> scripts;  // prompt -> completion

  at::Tensor forward(const at::Tensor&) override { throw std::logic_error("scripted policy: sample with the KV cache"); }
  at::Tensor forward_with(const at::Tensor& inputs, const ForwardArgs& args) override {
    if (!args.cache) throw std::logic_error("scripted policy: sample with the KV cache");
    auto& cache = *args.cache;
    if (cache.keys.empty()) {
      cache.keys = {inputs.clone()};
      cache.values = {at::scalar_tensor(inputs.size(1), at::kLong)};
    } else {
      cache.keys[0] = at::cat({cache.keys[0], inputs}, 1);
    }
    cache.length += inputs.size(1);
    const auto seen = cache.keys[0].contiguous();
    const int64_t width = cache.values[0].item<int64_t>(), written = seen.size(1) - width;
    auto logits = at::zeros({inputs.size(0), inputs.size(1), vocab_});
    for (int64_t b = 0; b < seen.size(0); ++b) {
      const int64_t* row = seen[b].data_ptr<int64_t>();
      int64_t start = 0;
      while (start < width && row[start] == pad_) ++start;  // the sampler's left padding
      auto it = scripts.find(std::vector<int64_t>(row + start, row + width));
      const bool scripted = it != scripts.end() && written < static_cast<int64_t>(it->second.size());
      logits[b][inputs.size(1) - 1][scripted ? it->second[static_cast<size_t>(written)] : pad_] = 10;
    }
    return logits;
  }

 private:
  int64_t vocab_, pad_;
};

std::vector<int64_t> to_vector(const at::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Per test problem r, by r % 8: 0, 4 the true answer (plan 1, execution 1); 1, 5 one step too few (0, 1);
// 2, 6 the last state wrong (1, 0); 3 "S s0 A <pad>" (-1, -1); 7 one step too few and its last state wrong
// (0, 0). With 512 problems: 128 (1, 1), 128 (0, 1), 128 (1, 0), 64 (-1, -1), 64 (0, 0).
TEST(PlanExecute, SolutionTreeEndToEnd) {
  testing::MemoryRecorder recorder;
  Context context;
  context.recorder = &recorder;
  auto task = testing::plugins().create<Task>("solution_tree", testing::values_of(Kind::task, "solution_tree"), context);
  const int64_t pad = 2, S = 4, A = 7;
  ScriptedPolicy model(task->shape().vocab_size, pad);
  auto prompts = task->eval_prompts("test");
  auto targets = task->eval_batch("test").targets;
  ASSERT_EQ(prompts.tokens.size(0), 512);
  auto next = [](int64_t id) { return 9 + (id - 9 + 1) % 20; };
  for (int64_t r = 0; r < 512; ++r) {
    const auto answer = to_vector(targets[r].masked_select(targets[r] != -100));  // the scored tokens
    ASSERT_EQ(answer.back(), pad);
    auto& script = model.scripts[to_vector(prompts.tokens[r].narrow(0, 0, prompts.lengths[r].item<int64_t>()))];
    script = answer;
    if (r % 4 == 1 || r % 8 == 7) script.erase(script.end() - 5, script.end() - 1);
    if (r % 4 == 2 || r % 8 == 7) script[script.size() - 2] = next(script[script.size() - 2]);
    if (r % 8 == 3) script = {S, answer[1], A, pad};
  }
  ASSERT_EQ(model.scripts.size(), 512u);
  context.task = task.get();
  context.model = &model;
  const Values test_only = {{"splits", std::vector<std::string>{"test"}}};
  testing::plugins().create<Analyzer>("plan_execute", testing::values_of(Kind::analyzer, "plan_execute", test_only), context)->on_eval(0);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.plan_accuracy"), 0.5);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_accuracy"), 0.5);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.exact"), 0.25);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_given_plan"), 0.5);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.execution_given_wrong_plan"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(recorder.last("eval.test.plan_unjudged"), 0.125);
  EXPECT_TRUE(torch::equal(recorder.rows.at("test.checks")[0].second,
                           torch::tensor({64, 0, 0, 0, 64, 128, 0, 128, 128}, torch::kLong).view({3, 3})));
  EXPECT_FALSE(recorder.metrics.count("eval.train.exact"));  // splits = ["test"]
  // exact is the verifier's share of correct greedy completions.
  auto options = completion_options(task->completion_format());
  options.greedy = true;
  EXPECT_DOUBLE_EQ(roll_out(*task, model, prompts, 1, options, 0).correct_share(), recorder.last("eval.test.exact"));
}

}  // namespace
}  // namespace assay
