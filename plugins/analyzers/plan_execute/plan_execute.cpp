// plan_execute: the rl-wall paper's decomposed score (../shared/papers/rl-wall.md, solution-tree.md): is the
// plan right, and is it executed right (given the policy's own plan, right or wrong)? For any task whose
// AnswerDetails::answer_checks() include "plan" and "execution" (solution_tree). At every eval, per eval
// split, `samples` completions of each prompt (greedy at temperature 0, else sampled); over them:
//   eval.<split>.plan_accuracy               share with plan = 1
//   eval.<split>.execution_accuracy          share with execution = 1
//   eval.<split>.exact                       share with both = 1 (on solution_tree: the verifier's correct share)
//   eval.<split>.execution_given_plan        share with execution = 1 among plan = 1
//   eval.<split>.execution_given_wrong_plan  share with execution = 1 among plan = 0 (a plan judged wrong)
//   eval.<split>.plan_unjudged               share with plan = -1 (e.g. malformed: no plan to read)
// The two conditional shares are not recorded at an eval where their condition holds for no completion.
// Per eval a row [3, 3] of counts by (plan, execution), each -1, 0, 1 in that order, in
// /analyzers/plan_execute/<split>.checks.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <algorithm>

namespace {

class PlanExecute : public assay::Analyzer {
 public:
  struct Options {
    std::vector<std::string> splits;
    int64_t samples = 1;
    double temperature = 0;
    int64_t max_prompts = 0;
    int64_t batch = 1024;
    void fields(assay::Fields& f) {
      f("splits", splits, "eval splits to measure; empty = all of the task's");
      f("samples", samples, "completions per prompt (all alike when greedy)").min(1);
      f("temperature", temperature, "sampling temperature; 0 = greedy decoding").min(0);
      f("max_prompts", max_prompts, "measure the first this many prompts of each split; 0 = all").min(0);
      f("batch", batch, "sequences per sampler call").min(1);
    }
  };

  PlanExecute(const Options& options, const assay::Context& context)
      : options_(options),
        seed_(context.seed),
        details_(assay::answer_details_task(context, "plan_execute")),
        task_(*context.task),
        model_(*context.model),
        recorder_(*context.recorder) {
    const auto checks = details_.answer_checks();
    auto index_of = [&](const std::string& name) {
      return static_cast<int64_t>(std::find(checks.begin(), checks.end(), name) - checks.begin());
    };
    plan_ = index_of("plan");
    execution_ = index_of("execution");
    check_count_ = static_cast<int64_t>(checks.size());
    if (plan_ == check_count_ || execution_ == check_count_) {
      std::string found;
      for (const auto& c : checks) found += (found.empty() ? "" : ", ") + c;
      throw std::invalid_argument("plan_execute needs a task whose answer checks include \"plan\" and \"execution\"; this task's: " +
                                  (found.empty() ? std::string("none") : found));
    }
    sampler_ = assay::completion_options(task_.completion_format());
    sampler_.greedy = options_.temperature == 0;
    if (!sampler_.greedy) sampler_.temperature = options_.temperature;
    if (options_.splits.empty()) options_.splits = task_.eval_splits();
    for (const auto& split : options_.splits) {
      recorder_.describe(split + ".checks", "axes", "[plan, execution] counts of completions; each axis: -1 (not judged), 0, 1");
    }
  }

  void on_eval(int64_t step) override {
    for (const auto& split : options_.splits) {
      auto counts = torch::zeros({3, 3}, torch::kLong);
      auto* c = counts.data_ptr<int64_t>();
      const uint64_t seed = seed_ ^ (static_cast<uint64_t>(step) << 20);
      for (const auto& answer : assay::detailed_completions(task_, details_, model_, prompts_of(split), options_.samples, sampler_, seed,
                                                            options_.batch)) {
        const auto& d = answer.detail;
        if (static_cast<int64_t>(d.checks.size()) != check_count_) {
          throw std::logic_error("plan_execute: the task gave " + std::to_string(d.checks.size()) + " checks for " +
                                 std::to_string(check_count_) + " names");
        }
        const int plan = d.checks[static_cast<size_t>(plan_)], execution = d.checks[static_cast<size_t>(execution_)];
        if (plan < -1 || plan > 1 || execution < -1 || execution > 1) {
          throw std::logic_error("plan_execute: the task gave checks " + std::to_string(plan) + ", " + std::to_string(execution) +
                                 " (each must be -1, 0 or 1)");
        }
        c[3 * (plan + 1) + execution + 1] += 1;
      }
      auto at = [&](int plan, int execution) { return static_cast<double>(c[3 * (plan + 1) + execution + 1]); };
      auto plans = [&](int plan) { return at(plan, -1) + at(plan, 0) + at(plan, 1); };
      const double total = plans(-1) + plans(0) + plans(1);
      if (total == 0) continue;  // a split without prompts
      const std::string name = "eval." + split + ".";
      recorder_.metric(name + "plan_accuracy", step, plans(1) / total);
      recorder_.metric(name + "execution_accuracy", step, (at(-1, 1) + at(0, 1) + at(1, 1)) / total);
      recorder_.metric(name + "exact", step, at(1, 1) / total);
      if (plans(1) > 0) recorder_.metric(name + "execution_given_plan", step, at(1, 1) / plans(1));
      if (plans(0) > 0) recorder_.metric(name + "execution_given_wrong_plan", step, at(0, 1) / plans(0));
      recorder_.metric(name + "plan_unjudged", step, plans(-1) / total);
      recorder_.append(split + ".checks", step, counts);
    }
  }

 private:
  assay::PromptBatch prompts_of(const std::string& split) {
    auto prompts = task_.eval_prompts(split);
    if (options_.max_prompts > 0 && prompts.tokens.size(0) > options_.max_prompts) {
      prompts = {prompts.tokens.narrow(0, 0, options_.max_prompts), prompts.lengths.narrow(0, 0, options_.max_prompts)};
    }
    return prompts;
  }

  Options options_;
  uint64_t seed_;
  assay::AnswerDetails& details_;  // before task_: it checks that there is a task
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  int64_t plan_ = 0, execution_ = 0, check_count_ = 0;  // indices into answer_checks(), and its size
  assay::SamplerOptions sampler_;
};

}  // namespace

ASSAY_PLUGIN("plan_execute", "1.0.0") {
  plugin.add<PlanExecute>("plan_execute", "plan accuracy and execution given the plan from a task's answer checks (rl-wall)");
}
