#pragma once
/// @file Multiple-choice tasks: questions a model answers with one option token at an answer slot, read as
/// a distribution over the options (calibration, robustness to perturbed prompts, choice models such as
/// rsa_polite). A task offers it by deriving from both assay::Task and assay::MultipleChoice; analyzers
/// find it with `dynamic_cast<assay::MultipleChoice*>(context.task)`.
///
///     auto questions = choice_task.choice_questions("test", assay::Perturbation::none);
///     auto answers = assay::answer_choices(model, choice_task, questions);  // answers.probabilities [Q, O]
#include <assay/components.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace assay {

/// How a task's questions are answered.
struct ChoiceFormat {
  std::vector<int64_t> option_tokens;     ///< the token of each option, in option order
  std::vector<std::string> option_names;  ///< a readable name per option ("A", "not_bad", ...)
  /// The token after which the answer follows when the model reasons first (question, reasoning, marker,
  /// answer); -1 = no reasoning: the answer slot directly follows the prompt.
  int64_t answer_marker = -1;
  std::vector<int64_t> stop_tokens;  ///< tokens that end a completion (reasoning stops there too)
  int64_t max_reasoning_tokens = 0;  ///< the longest reasoning the task expects (0 without reasoning)
};

/// What is done to the questions (the robustness study's perturbations).
enum class Perturbation {
  none,             ///< the questions as asked
  misleading_hint,  ///< a hint in the prompt names a wrong option
  wrong_reasoning,  ///< the prompt carries a reasoning that implies a wrong option, then the answer marker
};
/// "none", "misleading_hint", "wrong_reasoning".
std::string_view perturbation_name(Perturbation perturbation);
/// The inverse of perturbation_name; throws std::invalid_argument listing the valid names.
Perturbation perturbation_from_name(std::string_view name);

/// One split's questions.
struct ChoiceQuestions {
  PromptBatch prompts;
  /// True when each prompt ends at the answer slot (no reasoning, or a given reasoning and the marker);
  /// false when the model first writes its reasoning up to the task's answer marker.
  bool at_answer_slot = true;
  at::Tensor correct;     ///< int64 [Q]: the right option's index; -1 where no option is right (preferences)
  at::Tensor misleading;  ///< int64 [Q]: the option a perturbation points to; -1 for none
  std::vector<std::string> names;  ///< a name per question ("q17", "informative/2", ...)
};

/// A task whose problems are multiple-choice questions.
class MultipleChoice {
 public:
  virtual ~MultipleChoice();  // out of line: one type_info in libassay, so dynamic_cast works across plugins
  virtual ChoiceFormat choice_format() const = 0;
  /// The questions of eval split `split`, in the same order under every perturbation. Throws
  /// std::invalid_argument for a perturbation the task does not support (e.g. wrong_reasoning without
  /// reasoning).
  virtual ChoiceQuestions choice_questions(std::string_view split, Perturbation perturbation) = 0;
  /// The option that `reasoning` (generated tokens before the answer marker) implies as the answer to
  /// `prompt`, or -1 when it implies none (malformed, or no option matches). Must not throw on any
  /// input. Default: -1 (the task's reasoning implies nothing checkable).
  virtual int64_t implied_option(const std::vector<int64_t>& prompt, const std::vector<int64_t>& reasoning) {
    (void)prompt;
    (void)reasoning;
    return -1;
  }
};

/// The context's task as a MultipleChoice; throws std::invalid_argument naming `component` (the caller) and
/// the missing interface when there is no task or it is not a multiple-choice task.
MultipleChoice& multiple_choice_task(const Context& context, std::string_view component);

/// A model's answers to `questions` (CPU tensors).
struct ChoiceAnswers {
  /// float64 [Q, O]: softmax of the option tokens' logits at the answer slot (renormalized over the options).
  at::Tensor probabilities;
  at::Tensor chosen;    ///< int64 [Q]: the most probable option
  /// int64 [Q]: implied_option of the model's own greedy reasoning; -1 when it implies none or the prompts
  /// end at the answer slot.
  at::Tensor implied;
};

/// Answers `questions` with `model` in eval mode, without gradients: when the prompts do not end at the
/// answer slot, first the model's greedy reasoning up to the answer marker (at most max_reasoning_tokens;
/// the marker is appended when the model does not write it), then one forward pass per `batch` questions
/// reading the logits at the answer slot. Throws std::invalid_argument when the format has no options or
/// an option token lies outside the model's logits.
ChoiceAnswers answer_choices(Model& model, MultipleChoice& task, const ChoiceQuestions& questions, int64_t batch = 256);

}  // namespace assay
