// perturbation_robustness: a multiple-choice task answered as asked and under the robustness study's
// perturbations (../shared/papers/robustness-calibration.md): a misleading hint naming a wrong option, and
// a wrong reasoning (one implying a wrong option) written before the answer marker. Per eval split and
// condition c (none, then each of `perturbations`), over the questions with a right option, recorded as
// eval.<split>.<c>.<name>:
//   accuracy            share whose most probable option (at the answer slot) is right
//   correct_mass        mean probability of the right option
//   consistency         when the model writes its own reasoning (the task has reasoning and the condition
//                       does not supply one): share, among the questions whose reasoning implies an option,
//                       answered with that option (reasoning-answer consistency, the "faithfulness rate")
//   reasoning_valid     ... and the share whose reasoning implies an option at all
// and for a perturbation, against the unperturbed answers:
//   delta_accuracy      accuracy - accuracy under none
//   delta_correct_mass  correct_mass - correct_mass under none
//   flip_rate           share whose chosen option differs from the one chosen under none
//   follows_misleading  share that chose the option the perturbation points to (for wrong_reasoning, the
//                       answer consistent with the given reasoning)
// A perturbation the task cannot apply (e.g. wrong_reasoning on a task without reasoning) fails the run
// when the analyzer is built, before training.
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class PerturbationRobustness : public assay::Analyzer {
 public:
  struct Options {
    std::vector<std::string> splits;
    std::vector<std::string> perturbations = {"misleading_hint", "wrong_reasoning"};
    int64_t batch = 256;
    void fields(assay::Fields& f) {
      f("splits", splits, "eval splits to measure; empty = all of the task's");
      f("perturbations", perturbations, "what is done to the questions: misleading_hint, wrong_reasoning")
          .choices({"misleading_hint", "wrong_reasoning"});
      f("batch", batch, "questions per forward pass").min(1);
    }
  };

  PerturbationRobustness(const Options& options, const assay::Context& context)
      : options_(options), task_(assay::multiple_choice_task(context, "perturbation_robustness")), model_(*context.model),
        recorder_(*context.recorder) {
    if (options_.splits.empty()) options_.splits = context.task->eval_splits();
    for (const auto& name : options_.perturbations) perturbations_.push_back(assay::perturbation_from_name(name));
    for (const auto& split : options_.splits) {
      for (auto p : perturbations_) {
        try {
          task_.choice_questions(split, p);
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument("perturbation_robustness: perturbations names '" + std::string(assay::perturbation_name(p)) +
                                      "', which the task cannot apply to split '" + split + "': " + e.what());
        }
      }
    }
  }

  void on_eval(int64_t step) override {
    for (const auto& split : options_.splits) {
      const Measured clean = measure(split, assay::Perturbation::none, step, nullptr);
      for (auto p : perturbations_) measure(split, p, step, &clean);
    }
  }

 private:
  struct Measured {
    at::Tensor chosen;  // [Q with a right option]
    double accuracy = 0, correct_mass = 0;
  };

  Measured measure(const std::string& split, assay::Perturbation perturbation, int64_t step, const Measured* clean) {
    auto questions = task_.choice_questions(split, perturbation);
    auto answers = assay::answer_choices(model_, task_, questions, options_.batch);
    auto correct = questions.correct.cpu(), misleading = questions.misleading.cpu();
    auto keep = correct >= 0;
    Measured m;
    if (!keep.any().item<bool>()) return m;
    m.chosen = answers.chosen.index({keep});
    auto right = correct.index({keep});
    m.accuracy = (m.chosen == right).to(torch::kDouble).mean().item<double>();
    m.correct_mass = answers.probabilities.index({keep}).gather(1, right.unsqueeze(1)).mean().item<double>();
    const std::string prefix = "eval." + split + "." + std::string(assay::perturbation_name(perturbation)) + ".";
    recorder_.metric(prefix + "accuracy", step, m.accuracy);
    recorder_.metric(prefix + "correct_mass", step, m.correct_mass);
    if (!questions.at_answer_slot) {
      auto implied = answers.implied.index({keep});
      auto valid = implied >= 0;
      recorder_.metric(prefix + "reasoning_valid", step, valid.to(torch::kDouble).mean().item<double>());
      if (valid.any().item<bool>()) {
        recorder_.metric(prefix + "consistency", step,
                         (implied.index({valid}) == m.chosen.index({valid})).to(torch::kDouble).mean().item<double>());
      }
    }
    if (clean && clean->chosen.defined()) {
      recorder_.metric(prefix + "delta_accuracy", step, m.accuracy - clean->accuracy);
      recorder_.metric(prefix + "delta_correct_mass", step, m.correct_mass - clean->correct_mass);
      recorder_.metric(prefix + "flip_rate", step, (m.chosen != clean->chosen).to(torch::kDouble).mean().item<double>());
      auto target = misleading.index({keep});
      auto pointed = target >= 0;
      if (pointed.any().item<bool>()) {
        recorder_.metric(prefix + "follows_misleading", step,
                         (m.chosen.index({pointed}) == target.index({pointed})).to(torch::kDouble).mean().item<double>());
      }
    }
    return m;
  }

  Options options_;
  std::vector<assay::Perturbation> perturbations_;
  assay::MultipleChoice& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
};

}  // namespace

ASSAY_PLUGIN("perturbation_robustness", "1.0.0") {
  plugin.add<PerturbationRobustness>(
      "perturbation_robustness",
      "a multiple-choice task under misleading hints and wrong reasoning: accuracy, flips, following the misleading "
      "option, reasoning-answer consistency");
}
