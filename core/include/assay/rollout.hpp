#pragma once
/// @file What RL algorithms share: sampling completions of a verifiable task's prompts, judging them, laying
/// them out for log-prob computation, and a frozen reference policy.
///
///     auto prompts = task.train_prompts(step, 16);
///     auto rollout = assay::roll_out(task, model, prompts, 8, options, seed);   // 8 completions per prompt
///     auto logp = assay::completion_log_probs(model, rollout, rows, temperature);   // [n, C, V]
#include <assay/components.hpp>
#include <assay/sampler.hpp>

#include <cstdint>
#include <vector>

namespace assay {

/// Completions of a batch of prompts and their verdicts. Completion i answers prompt i / group_size.
struct Rollout {
  PromptBatch prompts;             ///< the distinct prompts, [P, T]
  int64_t group_size = 1;          ///< completions per prompt
  Samples samples;                 ///< tokens, log-probs at sampling time, lengths: [N = P * group_size, C]
  std::vector<Verdict> verdicts;   ///< per completion
  at::Tensor rewards;              ///< float64 [P, group_size], on the CPU
  at::Tensor sequences;            ///< int64 [N, T + C - 1]: prompt then completion, right-padded (model input)
  at::Tensor positions;            ///< int64 [N, C]: the position of `sequences` whose logits predict token j
  at::Tensor mask;                 ///< float [N, C]: 1 for completion tokens (the stop token included)
  double correct_share() const;    ///< share of completions judged correct
};

/// Samples `group_size` completions of every prompt (options as given; stop/pad tokens and the length
/// usually from task.completion_format()) and judges each with task.score.
Rollout roll_out(Task& task, Model& model, const PromptBatch& prompts, int64_t group_size,
                 const SamplerOptions& options, uint64_t seed);

/// Per prompt, how many of `samples` completions (sampled with `options`) the task judges correct:
/// int64 [P] on the CPU. Each sampler call holds whole prompts, at most max(samples, batch) sequences.
at::Tensor count_correct(Task& task, Model& model, const PromptBatch& prompts, int64_t samples,
                         const SamplerOptions& options, uint64_t seed, int64_t batch = 1024);

/// Records `eval.<split>.greedy_correct` for every eval split of `task`: the share of the split's prompts whose
/// greedy completion (through the sampler, ended and padded as `format` says) the task judges correct, as
/// the RL algorithms record it at their evaluation.
void record_greedy_correct(Task& task, Model& model, Recorder& recorder, int64_t step, const CompletionFormat& format,
                           uint64_t seed);

/// log_softmax(logits / temperature) at the completion positions of rollout rows `rows` (int64 [n]):
/// [n, C, V], differentiable. Gather the completion tokens (rollout.samples.tokens) for per-token log-probs.
at::Tensor completion_log_probs(Model& model, const Rollout& rollout, const at::Tensor& rows, double temperature);

/// The policy's parameters frozen at one moment (an RL stage's start), and forwards under them.
class ReferencePolicy {
 public:
  /// Copies `model`'s current parameters; the copy is kept in checkpoints through save/load.
  void snapshot(Model& model);
  bool empty() const { return parameters_.empty(); }
  /// Runs `f` with the reference parameters in the model (no gradients), then puts the model's back.
  template <class F>
  auto with(Model& model, F&& f) {
    swap(model);
    struct Restore {
      ReferencePolicy* self;
      Model& model;
      ~Restore() { self->swap(model); }
    } restore{this, model};
    return f();
  }
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive, Model& model);

 private:
  void swap(Model& model);
  std::vector<at::Tensor> parameters_;
};

}  // namespace assay
