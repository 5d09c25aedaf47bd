// GRPO (Shao et al. 2024) and its common variants, on a verifiable task (Task::train_prompts / score).
//
// Every `epochs` steps a rollout: prompts_per_step prompts from the task, group_size completions each from
// the core sampler, rewards from the task's verifier, and per group
//     A_i = (r_i - mean_g r) / (std_g r + eps)        (normalize_std = false: A_i = r_i - mean_g r, Dr. GRPO)
// Then each of the `epochs` steps minimizes, per completion token t (policy log-probs at the sampling
// temperature, old = at sampling time, ref = the stage's starting weights, delta = logp - logp_ref):
//     -min(rho_t A_i, clip(rho_t, 1 - clip, 1 + clip) A_i) + kl_coef * KL_t - entropy_coef * H_t
//     rho_t = exp(logp_t - logp_old_t),  KL_t = k1: delta | k2: delta^2 / 2 | k3: exp(-delta) - 1 + delta
// aggregated as `loss_aggregation` says: token_mean (over all completion tokens of the rollout),
// sequence_mean (mean over each completion's tokens, then over completions: the original GRPO), or
// token_sum (sum over tokens / (completions x max_new_tokens): Dr. GRPO's constant normalizer).
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <cmath>

#include "grpo_objective.hpp"

namespace {

class Grpo : public assay::Algorithm {
 public:
  using Options = grpo::GrpoOptions;

  Grpo(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), task_(*context.task), model_(*context.model), recorder_(*context.recorder) {
    format_ = task_.completion_format();  // throws for a task that is not verifiable
    if (options_.max_new_tokens > 0) format_.max_new_tokens = options_.max_new_tokens;
    if (format_.max_new_tokens <= 0) throw std::invalid_argument("grpo: set max_new_tokens (the task names no completion length)");
  }

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    if (reference_.empty()) reference_.snapshot(model_);
    const int64_t rollout_step = step - (step - 1) % options_.epochs;  // steps are 1-based
    if (rollout_step != rollout_step_) rollout(rollout_step);
    const int64_t n = rollout_.rollout.sequences.size(0);
    const auto rows = torch::arange(n).tensor_split(micro_count)[static_cast<size_t>(micro)].to(rollout_.rollout.sequences.device());
    auto [loss, metrics] = objective(rows);
    double weight = static_cast<double>(rows.size(0)) / static_cast<double>(n);
    if (options_.loss_aggregation == "token_mean") {
      const auto& mask = rollout_.rollout.mask;
      weight = mask.index_select(0, rows).sum().item<double>() / std::max(1.0, mask.sum().item<double>());
    }
    // The host records the weight-averaged metrics of the micro-batches: the rollout's go into each.
    metrics.insert(metrics.end(), rollout_.metrics.begin(), rollout_.metrics.end());
    return {loss, metrics, weight};
  }

  void evaluate(int64_t step) override { assay::record_greedy_correct(task_, model_, recorder_, step, format_, seed_); }

  void save(torch::serialize::OutputArchive& archive) const override { reference_.save(archive); }
  void load(torch::serialize::InputArchive& archive) override { reference_.load(archive, model_); }

 private:
  struct Prepared {
    assay::Rollout rollout;
    at::Tensor ref_logp;    // float [N, C]: log-probs under the reference (undefined when kl_coef = 0)
    at::Tensor advantages;  // float [N]
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
    auto prompts = task_.train_prompts(step, options_.prompts_per_step);
    Prepared p;
    p.rollout = assay::roll_out(task_, model_, prompts, options_.group_size, sampler_options(),
                                seed_ * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(step));
    const auto& r = p.rollout;
    p.advantages = grpo::group_advantages(r.rewards, options_.normalize_std, options_.advantage_eps).to(r.mask.device());
    if (options_.kl_coef > 0) {
      torch::NoGradGuard no_grad;
      auto all = torch::arange(r.sequences.size(0), r.positions.options());
      p.ref_logp = reference_.with(model_, [&] { return token_logp(r, all); });
    }
    p.metrics = {{"reward", r.rewards.mean().item<double>()},
                 {"correct", r.correct_share()},
                 {"completion_length", r.samples.lengths.to(torch::kDouble).mean().item<double>()}};
    rollout_ = std::move(p);
  }

  // Log-probs [n, C] of rows' completion tokens under the current parameters (and the log-softmax [n, C, V]).
  at::Tensor token_logp(const assay::Rollout& r, const at::Tensor& rows, at::Tensor* log_probs = nullptr) {
    auto picked = assay::completion_log_probs(model_, r, rows, options_.temperature);
    if (log_probs) *log_probs = picked;
    return picked.gather(2, r.samples.tokens.index_select(0, rows).unsqueeze(-1)).squeeze(-1);
  }

  std::pair<at::Tensor, std::vector<std::pair<std::string, double>>> objective(const at::Tensor& rows) {
    at::Tensor log_probs;
    auto logp = token_logp(rollout_.rollout, rows, &log_probs);
    auto mask = rollout_.rollout.mask.index_select(0, rows);
    auto old_logp = rollout_.rollout.samples.logprobs.index_select(0, rows);
    auto ref_logp = rollout_.ref_logp.defined() ? rollout_.ref_logp.index_select(0, rows) : at::Tensor();
    auto entropy = options_.entropy_coef > 0 ? -(log_probs.exp() * log_probs).sum(-1) : at::Tensor();
    auto loss = grpo::grpo_loss(logp, old_logp, ref_logp, entropy, rollout_.advantages.index_select(0, rows), mask, options_);
    // Diagnostics, per completion token.
    torch::NoGradGuard no_grad;
    const double tokens = std::max(1.0, mask.sum().item<double>());
    auto mean = [&](const at::Tensor& t) { return (t * mask).sum().item<double>() / tokens; };
    std::vector<std::pair<std::string, double>> metrics{{"clip_fraction", mean(((logp - old_logp).exp() - 1).abs().gt(options_.clip).to(torch::kFloat))}};
    if (ref_logp.defined()) metrics.emplace_back("kl_k3", mean((ref_logp - logp).exp() - 1 + (logp - ref_logp)));
    if (entropy.defined()) metrics.emplace_back("entropy", mean(entropy));
    return {loss, metrics};
  }

  Options options_;
  uint64_t seed_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::CompletionFormat format_;
  assay::ReferencePolicy reference_;
  Prepared rollout_;
  int64_t rollout_step_ = -1;
};

}  // namespace

ASSAY_PLUGIN("grpo", "1.0.0") {
  plugin.add<Grpo>("grpo", "group-relative policy optimization on a verifiable task (clipped surrogate, KL, Dr. GRPO options)");
}
