#pragma once
/// @file Verifiable tasks that say more about an answer than its Verdict: which form it takes (e.g. a solution
/// format: function code, tagged code, prose) and which of the task's named checks it passes (e.g. the plan
/// and its execution). A task offers it by deriving from both assay::Task and assay::AnswerDetails;
/// analyzers such as format_share and plan_execute find it with assay::answer_details_task.
///
///     auto& details = assay::answer_details_task(context, "format_share");
///     auto d = details.answer_details(prompt, completion);  // d.form indexes details.answer_forms()
#include <assay/components.hpp>
#include <assay/sampler.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace assay {

/// What a task finds in one completion.
struct AnswerDetail {
  int64_t form = -1;           ///< index into answer_forms(); -1 when no form is recognized
  std::vector<int8_t> checks;  ///< per answer_checks() entry: 1 passed, 0 failed, -1 not applicable
};

/// A verifiable task whose verdicts break down into a form and named checks.
class AnswerDetails {
 public:
  virtual ~AnswerDetails();  // out of line: one type_info in libassay, so dynamic_cast works across plugins
  /// Names of the forms an answer can take (e.g. {"function_code", "tagged_code", "prose"}); empty when the
  /// task does not sort answers into forms.
  virtual std::vector<std::string> answer_forms() const { return {}; }
  /// Names of the checks answer_details reports (e.g. {"plan", "execution"}); empty when none.
  virtual std::vector<std::string> answer_checks() const { return {}; }
  /// The form and checks of `completion` (tokens up to and including the stop token, no padding) as an
  /// answer to `prompt` (its tokens, no padding). Must not throw on malformed completions.
  virtual AnswerDetail answer_details(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) = 0;
};

/// One sampled completion of a prompt, judged.
struct DetailedCompletion {
  std::vector<int64_t> prompt;      ///< the prompt's tokens (no padding)
  std::vector<int64_t> completion;  ///< the generated tokens up to and including the stop token
  Verdict verdict;                  ///< task.score
  AnswerDetail detail;              ///< details.answer_details
};

/// `samples` completions of every prompt, sampled with `options` and judged by the task, in order (completion
/// j of prompt i at i * samples + j): what format_share and plan_execute count. Each sampler call holds whole
/// prompts, at most max(samples, batch) sequences; the call starting at prompt f draws with seed ^ f * 0x9e3779b97f4a7c15.
std::vector<DetailedCompletion> detailed_completions(Task& task, AnswerDetails& details, Model& model, const PromptBatch& prompts,
                                                     int64_t samples, const SamplerOptions& options, uint64_t seed,
                                                     int64_t batch = 1024);

/// The context's task as AnswerDetails; throws std::invalid_argument naming `component` (the caller) and the
/// missing interface when there is no task or it does not implement AnswerDetails.
AnswerDetails& answer_details_task(const Context& context, std::string_view component);

}  // namespace assay
