// PPO (Schulman et al. 2017) with a learned critic and GAE on a verifiable task, as the echo-chamber paper
// runs it on LM completions: each completion token is an action, the verifier's reward arrives on the last
// token, and the KL to the stage's starting weights enters as a per-token reward -kl_coef (logp_old - logp_ref).
//
// Every `epochs` steps a rollout: prompts_per_step prompts, group_size completions each from the core
// sampler, the critic's values V_t (of the state before token t, ppo_critic.hpp), per-token rewards, and
// GAE(gamma, lambda) advantages (whitened over the rollout's tokens by default); returns R = A + V.
// Each step first updates the critic (one AdamW step on the clipped value loss over the whole rollout), then
// returns the policy's clipped surrogate (token mean) for the host to back-propagate and step.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include "ppo_critic.hpp"
#include "ppo_objective.hpp"

namespace {

class Ppo : public assay::Algorithm {
 public:
  using Options = ppo::PpoOptions;

  Ppo(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), task_(*context.task), model_(*context.model),
        recorder_(*context.recorder), critic_(options) {
    format_ = task_.completion_format();  // throws for a task that is not verifiable
    if (options_.max_new_tokens > 0) format_.max_new_tokens = options_.max_new_tokens;
    if (format_.max_new_tokens <= 0) throw std::invalid_argument("ppo: set max_new_tokens (the task names no completion length)");
  }

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    if (reference_.empty()) reference_.snapshot(model_);
    const int64_t rollout_step = step - (step - 1) % options_.epochs;  // steps are 1-based
    if (rollout_step != rollout_step_) rollout(rollout_step);
    const auto& r = rollout_.rollout;
    const int64_t n = r.sequences.size(0);
    auto chunks = torch::arange(n, r.positions.options()).tensor_split(micro_count);
    if (step != critic_step_) {  // once per step on every rank (under --nproc a rank's first micro is not 0)
      critic_step_ = step;
      value_loss_ = critic_.update(model_, r, chunks, rollout_.old_values, rollout_.returns);
    }
    const auto& rows = chunks[static_cast<size_t>(micro)];
    auto log_probs = assay::completion_log_probs(model_, r, rows, options_.temperature);
    auto logp = log_probs.gather(2, r.samples.tokens.index_select(0, rows).unsqueeze(-1)).squeeze(-1);
    auto mask = r.mask.index_select(0, rows);
    auto old_logp = r.samples.logprobs.index_select(0, rows);
    auto entropy = options_.entropy_coef > 0 ? -(log_probs.exp() * log_probs).sum(-1) : at::Tensor();
    auto loss = ppo::policy_loss(logp, old_logp, rollout_.advantages.index_select(0, rows), entropy, mask,
                                 options_.clip, options_.entropy_coef);
    const double weight = mask.sum().item<double>() / std::max(1.0, r.mask.sum().item<double>());

    torch::NoGradGuard no_grad;
    const double tokens = std::max(1.0, mask.sum().item<double>());
    auto mean = [&](const at::Tensor& t) { return (t * mask).sum().item<double>() / tokens; };
    auto metrics = rollout_.metrics;
    metrics.emplace_back("clip_fraction", mean(((logp - old_logp).exp() - 1).abs().gt(options_.clip).to(torch::kFloat)));
    metrics.emplace_back("value_loss", value_loss_);
    if (entropy.defined()) metrics.emplace_back("entropy", mean(entropy));
    return {loss, metrics, weight};
  }

  void evaluate(int64_t step) override { assay::record_greedy_correct(task_, model_, recorder_, step, format_, seed_); }

  void save(torch::serialize::OutputArchive& archive) const override {
    reference_.save(archive);
    critic_.save(archive);
  }
  void load(torch::serialize::InputArchive& archive) override {
    reference_.load(archive, model_);
    critic_.load(archive, model_);
  }

 private:
  struct Prepared {
    assay::Rollout rollout;
    at::Tensor old_values;  // float [N, C]: the critic's values at sampling time
    at::Tensor returns;     // float [N, C]: GAE advantages + old values
    at::Tensor advantages;  // float [N, C]: GAE advantages, whitened when asked
    std::vector<std::pair<std::string, double>> metrics;
  };

  assay::SamplerOptions sampler_options() const {
    auto o = assay::completion_options(format_);
    o.temperature = options_.temperature;
    o.top_k = options_.top_k;
    o.top_p = options_.top_p;
    return o;
  }

  void rollout(int64_t step) {
    rollout_step_ = step;
    Prepared p;
    p.rollout = assay::roll_out(task_, model_, task_.train_prompts(step, options_.prompts_per_step), options_.group_size,
                                sampler_options(), seed_ * 0xd1b54a32d192ed03ULL + static_cast<uint64_t>(step));
    const auto& r = p.rollout;
    if (critic_.empty()) critic_.init(model_, r.sequences);
    torch::NoGradGuard no_grad;
    auto all = torch::arange(r.sequences.size(0), r.positions.options());
    at::Tensor ref_logp;
    if (options_.kl_coef > 0) {
      ref_logp = reference_.with(model_, [&] {
        auto log_probs = assay::completion_log_probs(model_, r, all, options_.temperature);
        return log_probs.gather(2, r.samples.tokens.unsqueeze(-1)).squeeze(-1);
      });
    }
    p.old_values = critic_.values(model_, r, all);
    auto rewards = ppo::token_rewards(r.rewards.reshape({-1}).to(r.mask.device()), r.samples.logprobs, ref_logp, r.mask, options_.kl_coef);
    auto advantages = ppo::gae(rewards, p.old_values, r.mask, options_.gamma, options_.lambda);
    auto returns = advantages + p.old_values.to(torch::kDouble) * r.mask;
    if (options_.whiten_advantages) advantages = ppo::whiten(advantages, r.mask);
    p.advantages = advantages.to(torch::kFloat);
    p.returns = returns.to(torch::kFloat);

    const double tokens = std::max(1.0, r.mask.sum().item<double>());
    auto masked_mean = [&](const at::Tensor& t) { return (t * r.mask).sum().item<double>() / tokens; };
    const double return_mean = masked_mean(returns);
    const double return_var = masked_mean((returns - return_mean).square());
    const double residual = masked_mean((returns - p.old_values).square());
    p.metrics = {{"reward", r.rewards.mean().item<double>()},
                 {"correct", r.correct_share()},
                 {"completion_length", r.samples.lengths.to(torch::kDouble).mean().item<double>()},
                 {"value_mean", masked_mean(p.old_values)},
                 // 1 - Var(R - V) / Var(R) over the rollout's tokens: how much of the return the critic predicts.
                 {"explained_variance", return_var > 0 ? 1 - residual / return_var : 0.0}};
    if (ref_logp.defined()) {
      p.metrics.emplace_back("kl_k1", ((r.samples.logprobs - ref_logp) * r.mask).sum(1).mean().item<double>());
    }
    rollout_ = std::move(p);
  }

  Options options_;
  uint64_t seed_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::CompletionFormat format_;
  assay::ReferencePolicy reference_;
  ppo::Critic critic_;
  Prepared rollout_;
  int64_t rollout_step_ = -1, critic_step_ = -1;
  double value_loss_ = 0;
};

}  // namespace

ASSAY_PLUGIN("ppo", "1.0.0") {
  plugin.add<Ppo>("ppo", "PPO with a critic (separate or value head), GAE and a per-token KL penalty on a verifiable task");
}
