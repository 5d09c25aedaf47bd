#include <assay/multiple_choice.hpp>
#include <assay/sampler.hpp>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

namespace assay {

MultipleChoice::~MultipleChoice() = default;

namespace {
constexpr std::array<std::string_view, 3> kPerturbationNames = {"none", "misleading_hint", "wrong_reasoning"};
}

std::string_view perturbation_name(Perturbation perturbation) { return kPerturbationNames.at(static_cast<size_t>(perturbation)); }

Perturbation perturbation_from_name(std::string_view name) {
  for (size_t i = 0; i < kPerturbationNames.size(); ++i) {
    if (kPerturbationNames[i] == name) return static_cast<Perturbation>(i);
  }
  throw std::invalid_argument("unknown perturbation '" + std::string(name) + "' (valid: none, misleading_hint, wrong_reasoning)");
}

MultipleChoice& multiple_choice_task(const Context& context, std::string_view component) {
  auto* task = context.task ? dynamic_cast<MultipleChoice*>(context.task) : nullptr;
  if (!task) {
    throw std::invalid_argument(std::string(component) + " needs a multiple-choice task (one implementing assay::MultipleChoice, "
                                "assay/multiple_choice.hpp, e.g. arithmetic_choice or choice_counts)");
  }
  return *task;
}

namespace {

/// Prompt rows (CPU, unpadded) extended by the model's greedy reasoning and the answer marker; `implied`
/// receives the option each reasoning implies.
std::vector<std::vector<int64_t>> reason(Model& model, MultipleChoice& task, const ChoiceFormat& format,
                                         const std::vector<std::vector<int64_t>>& prompts, const PromptBatch& batch,
                                         std::vector<int64_t>& implied) {
  if (format.answer_marker < 0 || format.max_reasoning_tokens < 1) {
    throw std::invalid_argument("answer_choices: the prompts stop before the answer slot, but the task's choice format has "
                                "no answer_marker or max_reasoning_tokens");
  }
  SamplerOptions o;
  o.greedy = true;
  o.max_new_tokens = format.max_reasoning_tokens;
  o.stop_tokens = format.stop_tokens;
  o.stop_tokens.push_back(format.answer_marker);
  auto samples = sample(model, batch.tokens, batch.lengths, o, 0);
  auto tokens = samples.tokens.cpu().contiguous(), lengths = samples.lengths.cpu();
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t* t = tokens[static_cast<int64_t>(i)].data_ptr<int64_t>();
    std::vector<int64_t> reasoning(t, t + lengths[static_cast<int64_t>(i)].item<int64_t>());
    // The answer follows the marker: drop whatever stop token ended the reasoning and write the marker.
    const bool stopped = !reasoning.empty() && std::find(o.stop_tokens.begin(), o.stop_tokens.end(), reasoning.back()) != o.stop_tokens.end();
    if (stopped) reasoning.pop_back();
    implied.push_back(task.implied_option(prompts[i], reasoning));
    out.push_back(prompts[i]);
    out.back().insert(out.back().end(), reasoning.begin(), reasoning.end());
    out.back().push_back(format.answer_marker);
  }
  return out;
}

}  // namespace

ChoiceAnswers answer_choices(Model& model, MultipleChoice& task, const ChoiceQuestions& questions, int64_t batch) {
  const ChoiceFormat format = task.choice_format();
  if (format.option_tokens.empty()) throw std::invalid_argument("answer_choices: the task's choice format has no options");
  if (batch < 1) throw std::invalid_argument("answer_choices: batch must be >= 1");
  const int64_t Q = questions.prompts.tokens.size(0);
  const auto device = questions.prompts.tokens.device();
  struct EvalMode {  // restores the model's mode on every way out
    Model& model;
    bool training = model.is_training();
    explicit EvalMode(Model& m) : model(m) { model.eval(); }
    ~EvalMode() { model.train(training); }
  } eval_mode(model);
  at::NoGradGuard no_grad;

  auto prompt_tokens = questions.prompts.tokens.cpu().contiguous(), prompt_lengths = questions.prompts.lengths.cpu();
  std::vector<int64_t> implied;
  std::vector<at::Tensor> probabilities;
  auto options = at::tensor(format.option_tokens, at::kLong).to(device);
  for (int64_t first = 0; first < Q; first += batch) {
    const int64_t count = std::min(batch, Q - first);
    std::vector<std::vector<int64_t>> rows;
    for (int64_t i = first; i < first + count; ++i) {
      const int64_t* p = prompt_tokens[i].data_ptr<int64_t>();
      rows.emplace_back(p, p + prompt_lengths[i].item<int64_t>());
    }
    if (questions.at_answer_slot) {
      implied.insert(implied.end(), rows.size(), -1);
    } else {
      PromptBatch chunk{questions.prompts.tokens.narrow(0, first, count), questions.prompts.lengths.narrow(0, first, count)};
      rows = reason(model, task, format, rows, chunk, implied);
    }
    size_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.size());
    auto inputs = at::zeros({count, static_cast<int64_t>(longest)}, at::kLong);
    auto last = at::empty({count}, at::kLong);
    for (int64_t i = 0; i < count; ++i) {
      const auto& r = rows[static_cast<size_t>(i)];
      std::copy(r.begin(), r.end(), inputs[i].data_ptr<int64_t>());
      last[i] = static_cast<int64_t>(r.size()) - 1;
    }
    // Right padding: a causal model's logits at the last real position do not see the padding.
    auto logits = model.forward(inputs.to(device));
    if (logits.dim() != 3) throw std::invalid_argument("answer_choices: the model must give per-token logits [B, T, C]");
    const int64_t C = logits.size(2);
    for (int64_t t : format.option_tokens) {
      if (t < 0 || t >= C) {
        throw std::invalid_argument("answer_choices: option token " + std::to_string(t) + " is outside the model's " +
                                    std::to_string(C) + " logits");
      }
    }
    auto at_slot = logits.gather(1, last.to(device).view({count, 1, 1}).expand({count, 1, C})).squeeze(1);
    probabilities.push_back(at_slot.index_select(1, options).to(at::kDouble).softmax(1).cpu());
  }
  ChoiceAnswers out;
  out.probabilities = Q > 0 ? at::cat(probabilities) : at::zeros({0, static_cast<int64_t>(format.option_tokens.size())}, at::kDouble);
  out.chosen = out.probabilities.argmax(1);
  out.implied = at::tensor(implied, at::kLong);
  return out;
}

}  // namespace assay
