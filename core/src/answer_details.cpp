#include <assay/answer_details.hpp>

#include <assay/rollout.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace assay {

AnswerDetails::~AnswerDetails() = default;

std::vector<DetailedCompletion> detailed_completions(Task& task, AnswerDetails& details, Model& model, const PromptBatch& prompts,
                                                     int64_t samples, const SamplerOptions& options, uint64_t seed, int64_t batch) {
  std::vector<DetailedCompletion> out;
  const int64_t P = prompts.tokens.size(0), per_call = std::max<int64_t>(1, batch / samples);
  for (int64_t first = 0; first < P; first += per_call) {
    const int64_t count = std::min(per_call, P - first);
    auto r = roll_out(task, model, {prompts.tokens.narrow(0, first, count), prompts.lengths.narrow(0, first, count)}, samples, options,
                      seed ^ (static_cast<uint64_t>(first) * 0x9e3779b97f4a7c15ULL));
    auto prompt_tokens = r.prompts.tokens.cpu().contiguous(), prompt_lengths = r.prompts.lengths.cpu().contiguous();
    auto tokens = r.samples.tokens.cpu().contiguous(), lengths = r.samples.lengths.cpu().contiguous();
    const int64_t T = prompt_tokens.size(1), C = tokens.size(1);
    for (int64_t i = 0; i < tokens.size(0); ++i) {
      const int64_t* p = prompt_tokens.data_ptr<int64_t>() + (i / samples) * T;
      const int64_t* t = tokens.data_ptr<int64_t>() + i * C;
      DetailedCompletion c{{p, p + prompt_lengths.data_ptr<int64_t>()[i / samples]}, {t, t + lengths.data_ptr<int64_t>()[i]},
                           r.verdicts[static_cast<size_t>(i)], {}};
      c.detail = details.answer_details(c.prompt, c.completion);
      out.push_back(std::move(c));
    }
  }
  return out;
}

AnswerDetails& answer_details_task(const Context& context, std::string_view component) {
  auto* task = context.task ? dynamic_cast<AnswerDetails*>(context.task) : nullptr;
  if (!task) {
    throw std::invalid_argument(std::string(component) + " needs a task that details its verdicts (one implementing "
                                "assay::AnswerDetails, assay/answer_details.hpp, e.g. math_formats or solution_tree)");
  }
  return *task;
}

}  // namespace assay
