// The sampler's token choice, shared by sample() and sample_blocks() so both follow the same rules.
#pragma once
#include <assay/sampler.hpp>

#include <ATen/core/Tensor.h>

#include <utility>

namespace assay {

/// Draws one token per row of `logits` [R, V] with uniforms u [R] (undefined when greedy): greedy argmax, or
/// inverse-CDF sampling of softmax(logits / temperature) after top-k and top-p truncation. Returns
/// (token, log-prob) as [R, 1] each; the log-prob is under softmax(logits / temperature), before truncation.
std::pair<at::Tensor, at::Tensor> draw_tokens(const at::Tensor& logits, const at::Tensor& u, const SamplerOptions& o);

}  // namespace assay
