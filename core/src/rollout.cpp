#include <assay/recorder.hpp>
#include <assay/rollout.hpp>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/serialize/archive.h>

#include "sampling_support.hpp"

#include <algorithm>
#include <string>

namespace assay {

double Rollout::correct_share() const {
  double correct = 0;
  for (const auto& v : verdicts) correct += v.correct;
  return verdicts.empty() ? 0.0 : correct / static_cast<double>(verdicts.size());
}

Rollout roll_out(Task& task, Model& model, const PromptBatch& prompts, int64_t group_size, const SamplerOptions& options,
                 uint64_t seed) {
  Rollout r;
  r.prompts = prompts;
  r.group_size = group_size;
  auto tokens = prompts.tokens.repeat_interleave(group_size, 0), lengths = prompts.lengths.repeat_interleave(group_size, 0);
  r.samples = sample_groups(model, tokens, lengths, group_size, options, seed);  // each prompt encoded once

  auto prompt_tokens = prompts.tokens.cpu().contiguous(), prompt_lengths = prompts.lengths.cpu();
  auto generated = r.samples.tokens.cpu().contiguous(), generated_lengths = r.samples.lengths.cpu();
  std::vector<double> rewards;
  for (int64_t i = 0; i < generated.size(0); ++i) {
    const int64_t p = i / group_size, pl = prompt_lengths[p].item<int64_t>(), cl = generated_lengths[i].item<int64_t>();
    const int64_t* pp = prompt_tokens[p].data_ptr<int64_t>();
    const int64_t* cp = generated[i].data_ptr<int64_t>();
    r.verdicts.push_back(task.score({pp, pp + pl}, {cp, cp + cl}));
    rewards.push_back(r.verdicts.back().reward);
  }
  r.rewards = at::tensor(rewards, at::kDouble).view({-1, group_size});

  // Right-padded prompt + completion rows; completion token j of row i sits at column length_i + j, so
  // the logits at column length_i + j - 1 predict it.
  const auto device = r.samples.tokens.device();
  const int64_t N = tokens.size(0), T = tokens.size(1), C = r.samples.tokens.size(1);
  auto row_lengths = lengths.to(device);
  auto sequences = at::full({N, T + C}, options.pad_token, tokens.options().device(device));
  sequences.narrow(1, 0, T).copy_(tokens);
  auto j = at::arange(C, row_lengths.options()).unsqueeze(0);
  auto columns = row_lengths.unsqueeze(1) + j;
  sequences.scatter_(1, columns, r.samples.tokens);
  r.sequences = sequences.narrow(1, 0, T + C - 1);
  r.positions = columns - 1;
  r.mask = (j < r.samples.lengths.unsqueeze(1)).to(at::kFloat);
  return r;
}

at::Tensor count_correct(Task& task, Model& model, const PromptBatch& prompts, int64_t samples,
                         const SamplerOptions& options, uint64_t seed, int64_t batch) {
  const int64_t P = prompts.tokens.size(0);
  std::vector<int64_t> correct(static_cast<size_t>(P), 0);
  const int64_t per_call = std::max<int64_t>(1, batch / samples);
  for (int64_t first = 0; first < P; first += per_call) {
    const int64_t count = std::min(per_call, P - first);
    PromptBatch chunk{prompts.tokens.narrow(0, first, count), prompts.lengths.narrow(0, first, count)};
    auto r = roll_out(task, model, chunk, samples, options, seed ^ (static_cast<uint64_t>(first) * 0x9e3779b97f4a7c15ULL));
    for (size_t i = 0; i < r.verdicts.size(); ++i) correct[static_cast<size_t>(first) + i / static_cast<size_t>(samples)] += r.verdicts[i].correct;
  }
  return at::tensor(correct, at::kLong);
}

at::Tensor completion_log_probs(Model& model, const Rollout& rollout, const at::Tensor& rows, double temperature) {
  auto logits = model.forward(rollout.sequences.index_select(0, rows)) / temperature;  // [n, T + C - 1, V]
  auto index = rollout.positions.index_select(0, rows);
  return logits.gather(1, index.unsqueeze(-1).expand({-1, -1, logits.size(2)})).log_softmax(-1);
}

void record_greedy_correct(Task& task, Model& model, Recorder& recorder, int64_t step, const CompletionFormat& format,
                           uint64_t seed) {
  auto options = completion_options(format);
  options.greedy = true;
  for (const auto& split : task.eval_splits()) {
    recorder.metric("eval." + split + ".greedy_correct", step, roll_out(task, model, task.eval_prompts(split), 1, options, seed).correct_share());
  }
}

void ReferencePolicy::snapshot(Model& model) {
  at::NoGradGuard no_grad;
  parameters_.clear();
  for (const auto& p : model.parameters()) parameters_.push_back(p.detach().clone());
}

void ReferencePolicy::swap(Model& model) {
  at::NoGradGuard no_grad;
  auto params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto held = params[i].detach().clone();
    params[i].detach().copy_(parameters_[i]);
    parameters_[i] = held;
  }
  // Autocast caches the low-precision copy of each weight by tensor, not by value: drop the copies of the
  // weights just replaced, or the next forward in this autocast scope would use them.
  at::autocast::clear_cache();
}

void ReferencePolicy::save(torch::serialize::OutputArchive& archive) const {
  for (size_t i = 0; i < parameters_.size(); ++i) archive.write("reference." + std::to_string(i), parameters_[i]);
}

void ReferencePolicy::load(torch::serialize::InputArchive& archive, Model& model) {
  parameters_.assign(model.parameters().size(), at::Tensor());
  for (size_t i = 0; i < parameters_.size(); ++i) archive.read("reference." + std::to_string(i), parameters_[i]);
}

}  // namespace assay
