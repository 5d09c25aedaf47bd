#include <assay/sampler.hpp>

#include "sampling_support.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace assay {
namespace {

void check(const SamplerOptions& o, const at::Tensor& prompts, const at::Tensor& lengths) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("sampler: " + what); };
  if (o.max_new_tokens < 1) fail("max_new_tokens must be >= 1");
  if (!o.greedy && !(o.temperature > 0)) fail("temperature must be > 0 (use greedy for argmax decoding)");
  if (o.top_k < 0) fail("top_k must be >= 0");
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("top_p must be in (0, 1]");
  if (prompts.dim() != 2 || prompts.scalar_type() != at::kLong || prompts.size(0) == 0 || prompts.size(1) == 0) {
    fail("prompts must be non-empty int64 [batch, time]");
  }
  if (lengths.defined()) {
    if (lengths.dim() != 1 || lengths.size(0) != prompts.size(0)) fail("prompt_lengths must be [batch]");
    if (lengths.min().item<int64_t>() < 1 || lengths.max().item<int64_t>() > prompts.size(1)) {
      fail("prompt_lengths must lie in [1, " + std::to_string(prompts.size(1)) + "]");
    }
  }
}

// The prefill of rows that come in runs of `group` equal prompts: each distinct prompt once, then its cache
// rows and last logits repeated. False (and the cache untouched) when the model's cache tensors are not
// batch-major, which the SDK leaves to the model: the caller then prefills every row.
bool prefill_groups(Model& model, const at::Tensor& inputs, const ForwardArgs& args, int64_t group, KVCache& cache, at::Tensor& logits) {
  const int64_t B = inputs.size(0);
  auto firsts = at::arange(0, B, group, inputs.options());
  KVCache distinct;
  distinct.capacity = cache.capacity;
  ForwardArgs first_args{args.attention_mask.defined() ? args.attention_mask.index_select(0, firsts) : at::Tensor(),
                         args.position_ids.defined() ? args.position_ids.index_select(0, firsts) : at::Tensor(), &distinct};
  auto distinct_logits = model.forward_with(inputs.index_select(0, firsts), first_args);
  const int64_t P = firsts.size(0);
  for (const auto* tensors : {&distinct.keys, &distinct.values}) {
    for (const auto& t : *tensors) {
      if (!t.defined() || t.dim() == 0 || t.size(0) != P) return false;
    }
  }
  for (auto* tensors : {&distinct.keys, &distinct.values}) {
    for (auto& t : *tensors) t = t.repeat_interleave(group, 0);
  }
  cache = std::move(distinct);
  logits = distinct_logits.narrow(1, distinct_logits.size(1) - 1, 1).repeat_interleave(group, 0);
  return true;
}

Samples generate(Model& model, const at::Tensor& prompts, const at::Tensor& prompt_lengths, const SamplerOptions& o,
                 uint64_t seed, int64_t group) {
  const auto device = prompts.device();
  const int64_t B = prompts.size(0), new_tokens = o.max_new_tokens;
  const auto lengths = prompt_lengths.defined() ? prompt_lengths.to(device) : at::full({B}, prompts.size(1), prompts.options());
  const int64_t L = lengths.max().item<int64_t>(), total = L + new_tokens;
  const bool padded = lengths.min().item<int64_t>() != L;

  // Left-align: prompt b occupies columns [L - length_b, L); positions count from its first token.
  auto columns = at::arange(L, prompts.options()).unsqueeze(0);
  auto pad_left = (L - lengths).unsqueeze(1);
  auto real = columns >= pad_left;  // [B, L]
  auto sequence = at::full({B, total}, o.pad_token, prompts.options());
  sequence.narrow(1, 0, L).copy_(prompts.narrow(1, 0, L).gather(1, (columns - pad_left).clamp_min(0)).masked_fill(real.logical_not(), o.pad_token));
  auto key_real = at::ones({B, total}, prompts.options().dtype(at::kBool));
  key_real.narrow(1, 0, L).copy_(real);
  auto positions = (at::arange(total, prompts.options()).unsqueeze(0) - pad_left).clamp_min(0);

  // Attention mask over positions [from, to) as queries and [0, to) as keys: causal, no padded keys. A
  // padded query attends to itself, so that no row is empty (an empty row would give NaN everywhere).
  auto mask_for = [&](int64_t from, int64_t to) -> at::Tensor {
    if (!padded) return {};
    auto q = at::arange(from, to, prompts.options()).unsqueeze(1), k = at::arange(to, prompts.options()).unsqueeze(0);
    auto allowed = (k <= q).unsqueeze(0).logical_and(key_real.narrow(1, 0, to).unsqueeze(1));
    return allowed.logical_or((k == q).unsqueeze(0)).unsqueeze(1);  // [B, 1, to - from, to]
  };

  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto tokens = at::full({B, new_tokens}, o.pad_token, prompts.options());
  auto logprobs = at::zeros({B, new_tokens}, prompts.options().dtype(at::kFloat));
  auto generated = at::zeros({B}, prompts.options());
  auto done = at::zeros({B, 1}, prompts.options().dtype(at::kBool));
  auto stops = at::tensor(o.stop_tokens, prompts.options());

  KVCache cache;
  cache.capacity = total;
  at::Tensor logits;
  for (int64_t i = 0; i < new_tokens; ++i) {
    const int64_t end = L + i;  // positions [0, end) are known
    if (o.kv_cache) {
      const int64_t from = i == 0 ? 0 : end - 1;
      ForwardArgs args{mask_for(from, end), padded ? positions.narrow(1, from, end - from) : at::Tensor(), &cache};
      if (i > 0 || group == 1 || !prefill_groups(model, sequence.narrow(1, from, end - from), args, group, cache, logits)) {
        logits = model.forward_with(sequence.narrow(1, from, end - from), args);
      }
    } else {
      ForwardArgs args{mask_for(0, end), positions.narrow(1, 0, end), nullptr};
      logits = padded ? model.forward_with(sequence.narrow(1, 0, end), args) : model.forward(sequence.narrow(1, 0, end));
    }
    TORCH_CHECK(logits.dim() == 3, "sampler: the model must return per-token logits [B, T, V], got ", logits.sizes());
    auto u = o.greedy ? at::Tensor() : at::rand({B}, generator, at::kDouble);
    auto [token, logp] = draw_tokens(logits.select(1, logits.size(1) - 1), u, o);
    token = token.masked_fill(done, o.pad_token);
    logp = logp.masked_fill(done, 0);
    tokens.narrow(1, i, 1).copy_(token);
    logprobs.narrow(1, i, 1).copy_(logp);
    sequence.narrow(1, end, 1).copy_(token);
    generated += done.logical_not().squeeze(1).to(at::kLong);
    if (stops.numel() > 0) done = done.logical_or(at::isin(token, stops));
    if (i + 1 < new_tokens && stops.numel() > 0 && done.all().item<bool>()) break;
  }
  return {tokens, logprobs, generated};
}

}  // namespace

std::pair<at::Tensor, at::Tensor> draw_tokens(const at::Tensor& logits, const at::Tensor& u, const SamplerOptions& o) {
  const auto scores = logits.to(at::kFloat);
  if (o.greedy) {
    auto token = scores.argmax(-1, true);
    return {token, scores.log_softmax(-1).gather(-1, token)};
  }
  auto scaled = scores / o.temperature;
  auto logp = scaled.log_softmax(-1);
  auto kept = scaled;
  const auto minus_inf = -std::numeric_limits<float>::infinity();
  if (o.top_k > 0 && o.top_k < scaled.size(-1)) {
    auto kth = std::get<0>(scaled.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    kept = kept.masked_fill(kept < kth, minus_inf);
  }
  if (o.top_p < 1) {
    auto [sorted, order] = kept.sort(-1, /*descending=*/true);
    auto probs = sorted.softmax(-1);
    // Drop a token when the tokens ranked above it already hold top_p (the first is always kept).
    auto drop = (probs.cumsum(-1) - probs) >= o.top_p;
    kept = kept.scatter(-1, order, sorted.masked_fill(drop, minus_inf));
  }
  // Inverse-CDF sampling: the first token whose cumulative mass exceeds u * total.
  auto cdf = kept.softmax(-1).to(at::kDouble).cumsum(-1);
  auto target = u.to(cdf.device()).unsqueeze(-1) * cdf.narrow(-1, cdf.size(-1) - 1, 1);
  auto token = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).clamp_max(cdf.size(-1) - 1);
  return {token, logp.gather(-1, token)};
}

Samples sample(Model& model, const at::Tensor& prompts, const at::Tensor& prompt_lengths, const SamplerOptions& o,
               uint64_t seed) {
  return sample_groups(model, prompts, prompt_lengths, 1, o, seed);
}

Samples sample_groups(Model& model, const at::Tensor& prompts, const at::Tensor& prompt_lengths, int64_t group,
                      const SamplerOptions& o, uint64_t seed) {
  check(o, prompts, prompt_lengths);
  if (group < 1 || prompts.size(0) % group != 0) {
    throw std::invalid_argument("sampler: " + std::to_string(prompts.size(0)) + " prompts do not come in groups of " + std::to_string(group));
  }
  EvalMode eval_mode(model);
  Samples s;
  {
    // Inference mode skips autograd bookkeeping on every op (a large share of a small decode step's cost);
    // the results are cloned out of it, so callers may use them with autograd (e.g. as RL training data).
    c10::InferenceMode inference;
    s = generate(model, prompts, prompt_lengths, o, seed, group);
  }
  return {s.tokens.clone(), s.logprobs.clone(), s.lengths.clone()};
}

}  // namespace assay
