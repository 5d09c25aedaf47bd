#pragma once
/// @file Strided block-parallel sampling (the EBFT paper's rollouts): from one ground-truth sequence x of
/// length L, B blocks are continued at once. Block k has the context x[0, k s + C) and a ground-truth
/// continuation x[k s + C, k s + C + G); its generated tokens are appended after x, interleaved: token t of
/// block k sits at index L + t B + k, attends to x[0, k s + C), to itself and to the earlier tokens of its
/// own block, and has position id k s + C + t, so it sees exactly what it would see continuing its context
/// alone. Each forward pass generates one token of every block (G passes in all, the first over x), with the
/// model's KV cache and custom attention mask (Model::forward_with).
///
///     assay::BlockLayout layout{8, 8, 8};                      // stride, context, length
///     auto rollouts = assay::sample_blocks(model, x, layout, 4, options, seed);   // 4 rollouts per sequence
///     auto logits = model.forward_with(rollouts.sequences, layout.forward_args(L, N, x.options()));  // training forward
#include <assay/components.hpp>
#include <assay/sampler.hpp>

#include <cstdint>

namespace assay {

/// Where the blocks of a sequence of length L sit.
struct BlockLayout {
  int64_t stride = 8;   ///< s: block k's context ends at k s + context
  int64_t context = 8;  ///< C: the first block's context
  int64_t length = 8;   ///< G: tokens generated per block

  /// B = (L - G - C) / s + 1 (the blocks whose ground-truth continuation lies within the sequence); throws
  /// std::invalid_argument when L < C + G or a field is < 1.
  int64_t blocks(int64_t sequence_length) const;
  /// k s + C: where block k's context ends and its continuation starts.
  int64_t start(int64_t block) const { return block * stride + context; }

  /// bool [T, T], T = L + B G: the attention mask of a sequence followed by its generated blocks (x causal
  /// over itself; generated tokens as described above).
  at::Tensor attention_mask(int64_t sequence_length, const at::TensorOptions& on) const;
  /// int64 [T]: position ids of x (0..L-1) then of the generated tokens (k s + C + t).
  at::Tensor position_ids(int64_t sequence_length, const at::TensorOptions& on) const;
  /// int64 [B, G]: the index (in the T-long sequence) of the logits that predict generated token t of block
  /// k: k s + C - 1 for t = 0 (x's last context token), L + (t - 1) B + k after.
  at::Tensor logit_positions(int64_t sequence_length, const at::TensorOptions& on) const;
  /// The arguments of a training forward over `batch` whole rollout sequences [batch, T] (the mask
  /// broadcast over the batch, position ids [batch, T]; no cache).
  ForwardArgs forward_args(int64_t sequence_length, int64_t batch, const at::TensorOptions& on) const;
};

/// Rollouts of a batch of sequences; rollout j of sequence i is row i * rollouts + j.
struct BlockSamples {
  at::Tensor sequences;  ///< int64 [N, L + B G]: x then the generated tokens, interleaved as in the layout
  at::Tensor tokens;     ///< int64 [N, B, G]: the generated tokens per block
  at::Tensor logprobs;   ///< float [N, B, G]: their log-probs at sampling time (as Samples::logprobs)
};

/// `rollouts` block-parallel continuations of each of `sequences` (int64 [S, L], no padding), G forward
/// passes with the KV cache, in eval mode without gradients (the model's mode is restored). Token choice
/// follows `options` (greedy, temperature, top_k, top_p; max_new_tokens, stop tokens and kv_cache are not
/// used: every block gets exactly G tokens). Deterministic given `seed`.
BlockSamples sample_blocks(Model& model, const at::Tensor& sequences, const BlockLayout& layout, int64_t rollouts,
                           const SamplerOptions& options, uint64_t seed);

/// The same rollouts' blocks generated one after another, each from its own context with assay::sample (B
/// sampler calls of G tokens): the baseline sample_blocks is measured against, and its reference in tests
/// (greedy decoding gives the same tokens). Returns tokens and logprobs as sample_blocks; sequences laid out
/// the same way.
BlockSamples sample_blocks_one_by_one(Model& model, const at::Tensor& sequences, const BlockLayout& layout,
                                      int64_t rollouts, const SamplerOptions& options, uint64_t seed);

}  // namespace assay
