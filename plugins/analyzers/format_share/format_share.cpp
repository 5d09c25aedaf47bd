// format_share: which forms a policy answers in, and how well in each (the echo-chamber paper's measurement,
// ../shared/papers/echo-chamber.md). At every eval, per eval split, `samples` completions of each prompt
// (greedy at temperature 0, else sampled), each sorted into one of the task's answer_forms() by
// AnswerDetails::answer_details and judged by the task's verifier. Records, per form f and "none"
// (completions in no form):
//   eval.<split>.format.<f>.share     share of the split's completions in form f
//   eval.<split>.format.<f>.accuracy  share correct among them; not recorded at an eval where f has none
// and per eval a row [forms + 1, 2] of counts (completions, correct), forms in the task's order then none,
// in /analyzers/format_share/<split>.counts.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <algorithm>

namespace {

class FormatShare : public assay::Analyzer {
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

  FormatShare(const Options& options, const assay::Context& context)
      : options_(options),
        seed_(context.seed),
        details_(assay::answer_details_task(context, "format_share")),
        task_(*context.task),
        model_(*context.model),
        recorder_(*context.recorder) {
    forms_ = details_.answer_forms();
    if (forms_.empty()) {
      throw std::invalid_argument("format_share: the task sorts no answers into forms (its answer_forms() is empty)");
    }
    if (std::find(forms_.begin(), forms_.end(), "none") != forms_.end()) {
      throw std::invalid_argument("format_share: the task names a form \"none\", which stands for completions in no form");
    }
    sampler_ = assay::completion_options(task_.completion_format());
    sampler_.greedy = options_.temperature == 0;
    if (!sampler_.greedy) sampler_.temperature = options_.temperature;
    if (options_.splits.empty()) options_.splits = task_.eval_splits();
    std::string names;
    for (const auto& form : forms_) names += form + ", ";
    for (const auto& split : options_.splits) {
      recorder_.describe(split + ".counts", "axes", "[form, (completions, correct)]; forms: " + names + "none");
    }
  }

  void on_eval(int64_t step) override {
    for (const auto& split : options_.splits) {
      const int64_t none = static_cast<int64_t>(forms_.size());
      auto counts = torch::zeros({none + 1, 2}, torch::kLong);  // per form then none: (completions, correct)
      auto* c = counts.data_ptr<int64_t>();
      const uint64_t seed = seed_ ^ (static_cast<uint64_t>(step) << 20);
      for (const auto& answer : assay::detailed_completions(task_, details_, model_, prompts_of(split), options_.samples, sampler_, seed,
                                                            options_.batch)) {
        const int64_t form = answer.detail.form;
        if (form < -1 || form >= none) {
          throw std::logic_error("format_share: the task gave form " + std::to_string(form) + ", outside [-1, " +
                                 std::to_string(none) + ")");
        }
        const int64_t row = form < 0 ? none : form;
        c[2 * row] += 1;
        c[2 * row + 1] += answer.verdict.correct;
      }
      const double total = static_cast<double>(counts.select(1, 0).sum().item<int64_t>());
      if (total == 0) continue;  // a split without prompts
      for (int64_t row = 0; row <= none; ++row) {
        const std::string name = "eval." + split + ".format." + (row == none ? "none" : forms_[static_cast<size_t>(row)]);
        recorder_.metric(name + ".share", step, static_cast<double>(c[2 * row]) / total);
        if (c[2 * row] > 0) recorder_.metric(name + ".accuracy", step, static_cast<double>(c[2 * row + 1]) / static_cast<double>(c[2 * row]));
      }
      recorder_.append(split + ".counts", step, counts);
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
  std::vector<std::string> forms_;
  assay::SamplerOptions sampler_;
};

}  // namespace

ASSAY_PLUGIN("format_share", "1.0.0") {
  plugin.add<FormatShare>("format_share", "share and accuracy of each answer form of a task's completions (echo chamber)");
}
