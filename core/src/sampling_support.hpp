// What sample() and sample_blocks() share: the token choice (so both follow the same rules) and the eval-mode
// scope.
#pragma once
#include <assay/sampler.hpp>

#include <assay/components.hpp>

#include <ATen/core/Tensor.h>

#include <utility>

namespace assay {

/// Draws one token per row of `logits` [R, V] with uniforms u [R] (undefined when greedy): greedy argmax, or
/// inverse-CDF sampling of softmax(logits / temperature) after top-k and top-p truncation. Returns
/// (token, log-prob) as [R, 1] each; the log-prob is under softmax(logits / temperature), before truncation.
std::pair<at::Tensor, at::Tensor> draw_tokens(const at::Tensor& logits, const at::Tensor& u, const SamplerOptions& o);

/// sample() for prompts whose rows come in runs of `group` equal prompts (as roll_out lays them out): with
/// the KV cache each distinct prompt is encoded once and its cache rows repeated (when the model's cache is
/// batch-major, as gpt's), so the prefill costs 1 / group; the tokens are those sample() draws, up to the
/// rounding of a batch of different size. Throws std::invalid_argument when the rows are not a multiple of
/// `group`.
Samples sample_groups(Model& model, const at::Tensor& prompts, const at::Tensor& prompt_lengths, int64_t group,
                      const SamplerOptions& o, uint64_t seed);

/// Puts the model in eval mode for its scope and restores the mode it had.
class EvalMode {
 public:
  explicit EvalMode(Model& model) : model_(model), was_training_(model.is_training()) { model_.eval(); }
  ~EvalMode() { model_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  Model& model_;
  bool was_training_;
};

}  // namespace assay
