#include <assay/block_sampling.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <stdexcept>
#include <string>

#include "sampling_support.hpp"

namespace assay {

int64_t BlockLayout::blocks(int64_t L) const {
  if (stride < 1 || context < 1 || length < 1) {
    throw std::invalid_argument("block layout: stride, context and length must be >= 1 (got " + std::to_string(stride) +
                                ", " + std::to_string(context) + ", " + std::to_string(length) + ")");
  }
  if (L < context + length) {
    throw std::invalid_argument("block layout: a sequence of " + std::to_string(L) + " tokens holds no block of context " +
                                std::to_string(context) + " and length " + std::to_string(length));
  }
  return (L - length - context) / stride + 1;
}

at::Tensor BlockLayout::attention_mask(int64_t L, const at::TensorOptions& on) const {
  const int64_t B = blocks(L), T = L + B * length;
  auto index = at::arange(T, on.dtype(at::kLong));
  auto generated = index >= L;
  auto block = (index - L).remainder(B);  // of generated positions
  auto step = (index - L).div(B, "floor");
  auto query = index.unsqueeze(1), key = index.unsqueeze(0);
  // x: causal over x.
  auto x_rows = generated.logical_not().unsqueeze(1).logical_and(key <= query);
  // Generated token t of block k: x[0, k s + C), and tokens t' <= t of block k.
  auto context_end = (block * stride + context).unsqueeze(1);
  auto sees_context = key < context_end;
  auto same_block = generated.unsqueeze(0).logical_and(block.unsqueeze(0) == block.unsqueeze(1))
                        .logical_and(step.unsqueeze(0) <= step.unsqueeze(1));
  auto generated_rows = generated.unsqueeze(1).logical_and(sees_context.logical_or(same_block));
  return x_rows.logical_or(generated_rows).to(on.device());
}

at::Tensor BlockLayout::position_ids(int64_t L, const at::TensorOptions& on) const {
  const int64_t B = blocks(L);
  auto generated = at::arange(B * length, on.dtype(at::kLong));
  auto positions = (generated.remainder(B) * stride + context) + generated.div(B, "floor");
  return at::cat({at::arange(L, positions.options()), positions}).to(on.device());
}

at::Tensor BlockLayout::logit_positions(int64_t L, const at::TensorOptions& on) const {
  const int64_t B = blocks(L);
  auto k = at::arange(B, on.dtype(at::kLong)).unsqueeze(1);
  auto t = at::arange(length, on.dtype(at::kLong)).unsqueeze(0);
  auto after_first = L + (t - 1) * B + k;
  return at::where(t == 0, k * stride + context - 1, after_first).to(on.device());
}

ForwardArgs BlockLayout::forward_args(int64_t L, int64_t batch, const at::TensorOptions& on) const {
  return {attention_mask(L, on).unsqueeze(0).unsqueeze(0), position_ids(L, on).unsqueeze(0).expand({batch, -1}), nullptr};
}

namespace {

void check(const at::Tensor& sequences, int64_t rollouts) {
  if (sequences.dim() != 2 || sequences.scalar_type() != at::kLong || sequences.size(0) == 0) {
    throw std::invalid_argument("sample_blocks: sequences must be a non-empty int64 [S, L] tensor");
  }
  if (rollouts < 1) throw std::invalid_argument("sample_blocks: rollouts must be >= 1");
}

/// Writes the [N, B, G] tokens after x in the interleaved layout.
at::Tensor interleave(const at::Tensor& x, const at::Tensor& tokens) {
  // tokens [N, B, G] -> [N, G, B] -> [N, G B]: index t B + k holds token t of block k.
  return at::cat({x, tokens.transpose(1, 2).reshape({tokens.size(0), -1})}, 1);
}

}  // namespace

BlockSamples sample_blocks(Model& model, const at::Tensor& sequences, const BlockLayout& layout, int64_t rollouts,
                           const SamplerOptions& options, uint64_t seed) {
  check(sequences, rollouts);
  const int64_t L = sequences.size(1), B = layout.blocks(L), G = layout.length, T = L + B * G;
  EvalMode eval_mode(model);
  BlockSamples out;
  {
    c10::InferenceMode inference;
    const auto on = sequences.options();
    auto x = sequences.repeat_interleave(rollouts, 0);  // [N, L]
    const int64_t N = x.size(0);
    auto mask = layout.attention_mask(L, on);     // [T, T]
    auto positions = layout.position_ids(L, on);  // [T]
    auto tokens = at::empty({N, B, G}, on);
    auto logprobs = at::empty({N, B, G}, on.dtype(at::kFloat));
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    KVCache cache;
    cache.capacity = T;
    // Pass 0 runs over x; pass t > 0 over the B tokens generated at t - 1 (indices L + (t - 1) B + k).
    auto logits = model.forward_with(x, {mask.narrow(0, 0, L).narrow(1, 0, L).unsqueeze(0).unsqueeze(0),
                                         positions.narrow(0, 0, L).unsqueeze(0).expand({N, L}), &cache});
    auto next = logits.index_select(1, at::arange(B, on) * layout.stride + (layout.context - 1));  // [N, B, V]
    for (int64_t t = 0; t < G; ++t) {
      auto u = options.greedy ? at::Tensor() : at::rand({N * B}, generator, at::kDouble);
      auto [token, logp] = draw_tokens(next.reshape({N * B, -1}), u, options);
      tokens.select(2, t).copy_(token.view({N, B}));
      logprobs.select(2, t).copy_(logp.view({N, B}));
      if (t + 1 == G) break;
      const int64_t from = L + t * B;
      auto args = ForwardArgs{mask.narrow(0, from, B).narrow(1, 0, from + B).unsqueeze(0).unsqueeze(0),
                              positions.narrow(0, from, B).unsqueeze(0).expand({N, B}), &cache};
      next = model.forward_with(token.view({N, B}), args);  // [N, B, V]
    }
    out = {interleave(x, tokens), tokens, logprobs};
  }
  return {out.sequences.clone(), out.tokens.clone(), out.logprobs.clone()};
}

BlockSamples sample_blocks_one_by_one(Model& model, const at::Tensor& sequences, const BlockLayout& layout,
                                      int64_t rollouts, const SamplerOptions& options, uint64_t seed) {
  check(sequences, rollouts);
  const int64_t L = sequences.size(1), B = layout.blocks(L), G = layout.length;
  auto x = sequences.repeat_interleave(rollouts, 0);
  auto o = options;
  o.max_new_tokens = G;
  o.stop_tokens.clear();
  std::vector<at::Tensor> tokens, logprobs;
  for (int64_t k = 0; k < B; ++k) {
    auto samples = sample(model, x.narrow(1, 0, layout.start(k)).contiguous(), {}, o, seed + static_cast<uint64_t>(k));
    tokens.push_back(samples.tokens);
    logprobs.push_back(samples.logprobs);
  }
  auto t = at::stack(tokens, 1);
  return {interleave(x, t), t, at::stack(logprobs, 1)};
}

}  // namespace assay
