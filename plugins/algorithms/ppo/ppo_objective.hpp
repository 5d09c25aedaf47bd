// PPO's options and objective as plain tensor functions (used by ppo.cpp; tested against hand-computed values).
// Shapes: [N, C] per completion token (N completions, C = the longest), mask 1 on completion tokens (the
// stop token included), which form a prefix of each row.
#pragma once
#include <assay/options.hpp>

#include <torch/torch.h>

#include <string>

namespace ppo {

struct PpoOptions {
  int64_t prompts_per_step = 16;
  int64_t group_size = 8;
  int64_t epochs = 1;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  int64_t max_new_tokens = 0;
  double clip = 0.2;
  double gamma = 1.0;
  double lambda = 0.95;
  bool whiten_advantages = true;
  double kl_coef = 0.0;
  double entropy_coef = 0.0;
  std::string critic = "separate";
  double critic_lr = 1e-4;
  double critic_weight_decay = 0.0;
  double critic_grad_clip = 1.0;
  double value_clip = 0.2;
  void fields(assay::Fields& f) {
    f("prompts_per_step", prompts_per_step, "prompts per rollout").min(1);
    f("group_size", group_size, "completions sampled per prompt").min(1);
    f("epochs", epochs, "optimizer steps per rollout (PPO epochs); a rollout every `epochs` steps").min(1);
    f("temperature", temperature, "sampling temperature; log-probs of the policy use it too").min(1e-6);
    f("top_k", top_k, "sampling: the k most likely tokens; 0 = all").min(0);
    f("top_p", top_p, "sampling: nucleus mass").range(1e-6, 1);
    f("max_new_tokens", max_new_tokens, "longest completion; 0 = the task's completion_format()").min(0);
    f("clip", clip, "epsilon of the clipped surrogate, rho in [1 - clip, 1 + clip]").min(0);
    f("gamma", gamma, "GAE discount per token").range(0, 1);
    f("lambda", lambda, "GAE lambda (1 = Monte-Carlo returns, 0 = one-step TD)").range(0, 1);
    f("whiten_advantages", whiten_advantages, "normalize advantages to mean 0, std 1 over the rollout's tokens");
    f("kl_coef", kl_coef, "per-token reward -kl_coef * (logp - logp_ref) (k1 KL to the stage's starting weights)").min(0);
    f("entropy_coef", entropy_coef, "weight of the entropy bonus (subtracted from the loss)").min(0);
    f("critic", critic, "separate (the stage's starting weights + a value head, trained apart) | head (a value head on "
      "the policy's detached last hidden state)").choices({"separate", "head"});
    f("critic_lr", critic_lr, "AdamW learning rate of the critic (constant)").min(0);
    f("critic_weight_decay", critic_weight_decay, "AdamW weight decay of the critic").min(0);
    f("critic_grad_clip", critic_grad_clip, "clip the critic's gradient norm; 0 = off").min(0);
    f("value_clip", value_clip, "clip new values to old +- value_clip in the value loss; 0 = off").min(0);
  }
};

/// Per-token rewards (float64): the verifier's reward on each completion's last token, and with a reference
/// (ref_logp defined) -kl_coef * (old_logp - ref_logp) on every completion token.
inline at::Tensor token_rewards(const at::Tensor& rewards, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                                const at::Tensor& mask, double kl_coef) {
  auto m = mask.to(torch::kDouble);
  auto per_token = torch::zeros_like(m);
  if (ref_logp.defined()) per_token = -kl_coef * (old_logp.to(torch::kDouble) - ref_logp.to(torch::kDouble)) * m;
  auto last = (m.sum(1).to(torch::kLong) - 1).clamp_min(0).unsqueeze(1);
  auto terminal = torch::zeros_like(m).scatter_(1, last, rewards.to(torch::kDouble).reshape({-1, 1}));
  return per_token + terminal * (m.sum(1, true) > 0);
}

/// Generalized advantage estimation (Schulman et al. 2016) over completion tokens, float64 [N, C]:
///   delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lambda A_{t+1},
/// with V and A zero after a completion's last token (the episode ends there). values[t] is the critic's
/// value of the state before token t. Returns advantages (0 on padding); returns = advantages + values.
inline at::Tensor gae(const at::Tensor& rewards, const at::Tensor& values, const at::Tensor& mask, double gamma, double lambda) {
  auto m = mask.to(torch::kDouble);
  auto v = values.to(torch::kDouble) * m;
  auto r = rewards.to(torch::kDouble);
  const int64_t length = m.size(1);
  auto advantages = torch::zeros_like(m);
  auto next_advantage = torch::zeros({m.size(0)}, m.options());
  for (int64_t t = length - 1; t >= 0; --t) {
    auto next_value = t + 1 < length ? v.select(1, t + 1) : torch::zeros_like(next_advantage);
    auto delta = r.select(1, t) + gamma * next_value - v.select(1, t);
    next_advantage = (delta + gamma * lambda * next_advantage) * m.select(1, t);
    advantages.select(1, t).copy_(next_advantage);
  }
  return advantages;
}

/// (x - mean) / (std + eps) over the masked entries (population std), 0 on padding.
inline at::Tensor whiten(const at::Tensor& x, const at::Tensor& mask, double eps = 1e-8) {
  auto m = mask.to(x.scalar_type());
  auto count = m.sum().clamp_min(1);
  auto mean = (x * m).sum() / count;
  auto variance = ((x - mean).square() * m).sum() / count;
  return (x - mean) / (variance.sqrt() + eps) * m;
}

/// The clipped surrogate -min(rho A, clip(rho, 1 - clip, 1 + clip) A), rho = exp(logp - old_logp), minus
/// entropy_coef * entropy (when defined), as a mean over the masked tokens.
inline at::Tensor policy_loss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& advantages,
                              const at::Tensor& entropy, const at::Tensor& mask, double clip, double entropy_coef) {
  auto ratio = (logp - old_logp).exp();
  auto per_token = -torch::min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages);
  if (entropy.defined()) per_token = per_token - entropy_coef * entropy;
  return (per_token * mask).sum() / mask.sum().clamp_min(1);
}

/// 0.5 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2) as a mean over the masked tokens (c = 0: the
/// plain squared error).
inline at::Tensor value_loss(const at::Tensor& values, const at::Tensor& old_values, const at::Tensor& returns,
                             const at::Tensor& mask, double value_clip) {
  auto error = (values - returns).square();
  if (value_clip > 0) {
    auto clipped = old_values + (values - old_values).clamp(-value_clip, value_clip);
    error = torch::max(error, (clipped - returns).square());
  }
  return 0.5 * (error * mask).sum() / mask.sum().clamp_min(1);
}

}  // namespace ppo
