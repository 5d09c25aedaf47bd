// calibration: how a model's answers to a multiple-choice task are distributed over the options
// (../shared/papers/robustness-calibration.md). Per eval split, over the questions with a right option:
//   p(o)            softmax of the option tokens' logits at the answer slot, renormalized over the options
//                   (after the model's own greedy reasoning when the task has reasoning; assay::answer_choices)
//   accuracy        share of questions whose most probable option is right
//   entropy         mean of H = -sum_o p(o) log p(o) (nats); normalized_entropy = mean of H / log |O|
//   correct_mass    mean of p(o*), o* the right option
//   confidence      mean of max_o p(o)
//   ece             expected calibration error: questions binned by max_o p(o) into `bins` equal-width bins
//                   of [0, 1] (a value on an edge goes to the upper bin, 1 to the last), then
//                   sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|
// recorded as eval.<split>.choice.<name>; the rows <split>.probabilities [Q, |O|] and <split>.correct
// [Q] (-1 where no option is right) keep the per-question detail for comparing checkpoints.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

class Calibration : public assay::Analyzer {
 public:
  struct Options {
    std::vector<std::string> splits;
    int64_t bins = 10;
    int64_t batch = 256;
    void fields(assay::Fields& f) {
      f("splits", splits, "eval splits to measure; empty = all of the task's");
      f("bins", bins, "equal-width confidence bins of the expected calibration error").range(1, 1000);
      f("batch", batch, "questions per forward pass").min(1);
    }
  };

  Calibration(const Options& options, const assay::Context& context)
      : options_(options), task_(assay::multiple_choice_task(context, "calibration")), model_(*context.model),
        recorder_(*context.recorder) {
    if (options_.splits.empty()) options_.splits = context.task->eval_splits();
    std::string names;
    for (const auto& n : task_.choice_format().option_names) names += (names.empty() ? "" : ", ") + n;
    for (const auto& split : options_.splits) {
      recorder_.describe(split + ".probabilities", "axes", "[question, option]: the option distribution at the answer slot");
      recorder_.describe(split + ".probabilities", "options", names);
      recorder_.describe(split + ".correct", "axes", "[question]: the right option's index, -1 where none is right");
    }
  }

  void on_eval(int64_t step) override {
    for (const auto& split : options_.splits) {
      auto questions = task_.choice_questions(split, assay::Perturbation::none);
      auto answers = assay::answer_choices(model_, task_, questions, options_.batch);
      recorder_.append(split + ".probabilities", step, answers.probabilities);
      recorder_.append(split + ".correct", step, questions.correct.cpu());
      record(split, step, answers.probabilities, questions.correct.cpu());
    }
  }

 private:
  void record(const std::string& split, int64_t step, const at::Tensor& p_all, const at::Tensor& correct_all) {
    auto has_answer = correct_all >= 0;
    if (!has_answer.any().item<bool>()) return;  // preference data: no right option to be calibrated against
    auto p = p_all.index({has_answer});
    auto correct = correct_all.index({has_answer});
    const auto options = static_cast<double>(p.size(1));
    auto entropy = -(p * p.clamp_min(1e-300).log()).sum(1);
    auto [confidence, chosen] = p.max(1);
    auto right = (chosen == correct).to(torch::kDouble);
    auto bin = (confidence * static_cast<double>(options_.bins)).floor().clamp_max(static_cast<double>(options_.bins - 1)).to(torch::kLong);
    double ece = 0;
    const auto n = static_cast<double>(p.size(0));
    for (int64_t b = 0; b < options_.bins; ++b) {
      auto in = bin == b;
      const double count = in.sum().item<double>();
      if (count == 0) continue;
      ece += count / n * std::abs(right.index({in}).mean().item<double>() - confidence.index({in}).mean().item<double>());
    }
    const std::string prefix = "eval." + split + ".choice.";
    recorder_.metric(prefix + "accuracy", step, right.mean().item<double>());
    recorder_.metric(prefix + "entropy", step, entropy.mean().item<double>());
    recorder_.metric(prefix + "normalized_entropy", step, (entropy / std::log(options)).mean().item<double>());
    recorder_.metric(prefix + "correct_mass", step, p.gather(1, correct.unsqueeze(1)).mean().item<double>());
    recorder_.metric(prefix + "confidence", step, confidence.mean().item<double>());
    recorder_.metric(prefix + "ece", step, ece);
  }

  Options options_;
  assay::MultipleChoice& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
};

}  // namespace

ASSAY_PLUGIN("calibration", "1.0.0") {
  plugin.add<Calibration>("calibration",
                          "a multiple-choice task's option distributions: accuracy, entropy, mass on the right option, ECE");
}
