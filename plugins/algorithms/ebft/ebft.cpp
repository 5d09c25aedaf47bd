// EBFT (energy-based fine-tuning by feature matching; ../shared/papers/ebft.md). Each step: the task's
// training batch gives S ground-truth sequences x; strided block-parallel sampling (assay/block_sampling.hpp)
// continues B blocks of each, n rollouts per sequence; a frozen feature network (the weights at the stage's
// start) embeds every generated block and the ground-truth block (hidden states at `feature_layers`,
// concatenated, pooled over the block's G tokens); the feature-matching reward with leave-one-out baselines
// (ebft_reward.hpp) gives an advantage per (rollout, block), broadcast to the block's tokens; the loss is
//     rl_coef * mean_rollouts[masked_mean_tokens(-ratio A)] + ce_coef * CE(x) + kl_coef * KL,
// ratio = exp(logp - stopgrad(logp)) (on-policy REINFORCE), from one forward over x and its rollouts under
// the strided mask (the x part of which is the plain causal LM: CE(x) comes from it).
//
// Features are computed per block as an ordinary causal sequence (the block's context, then its G tokens):
// under the strided mask a generated token sees exactly that, so the hidden states are the same, and the
// model needs only hidden_states(), not a masked variant of it.
#include <assay/assay.hpp>
#include <assay/block_sampling.hpp>

#include <torch/torch.h>

#include "ebft_reward.hpp"

namespace {

class Ebft : public assay::Algorithm {
 public:
  struct Options {
    int64_t stride = 8;
    int64_t context = 8;
    int64_t block_length = 8;
    int64_t rollouts = 4;
    double temperature = 1.0;
    double top_p = 1.0;
    std::vector<int64_t> feature_layers = {-1};
    std::string pooling = "last";
    bool whiten = false;
    double alignment_coef = 1.0;
    double diversity_coef = 1.0;
    double rl_coef = 1.0;
    double ce_coef = 0.0;
    double kl_coef = 0.0;
    void fields(assay::Fields& f) {
      f("stride", stride, "s: block k's context is x[0, k s + context)").min(1);
      f("context", context, "C: the first block's context length").min(1);
      f("block_length", block_length, "G: tokens generated per block").min(1);
      f("rollouts", rollouts, "n: rollouts per sequence (>= 3 with a diversity term, else >= 2)").min(2);
      f("temperature", temperature, "sampling temperature; the policy's log-probs use it too").min(1e-6);
      f("top_p", top_p, "sampling: nucleus mass").range(1e-6, 1);
      f("feature_layers", feature_layers, "hidden states concatenated into a feature (0 = embeddings, -1 = the "
        "last block; the paper's 25/50/75% depth of a 4-layer gpt is [1, 2, 3])");
      f("pooling", pooling, "pool a block's G hidden states: last token | mean").choices({"last", "mean"});
      f("whiten", whiten, "whiten features per (sequence, block): W = (X X^T)^(-1/2) of the n rollouts");
      f("alignment_coef", alignment_coef, "a: weight of 2 cos(phi_j, phi*)").min(0);
      f("diversity_coef", diversity_coef, "d: weight of 2/(n-1) sum_{k != j} <phi_j, phi_k>").min(0);
      f("rl_coef", rl_coef, "weight of the REINFORCE term").min(0);
      f("ce_coef", ce_coef, "weight of the teacher-forced cross-entropy on the ground-truth sequences").min(0);
      f("kl_coef", kl_coef, "weight of the k3 KL to the stage's starting weights on generated tokens").min(0);
    }
  };

  Ebft(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), task_(*context.task), model_(*context.model), recorder_(*context.recorder),
        layout_{options.stride, options.context, options.block_length} {
    if (options_.diversity_coef > 0 && options_.rollouts < 3) {
      throw std::invalid_argument("ebft: diversity_coef > 0 needs rollouts >= 3 (the leave-one-out diversity baseline)");
    }
    if (options_.feature_layers.empty()) throw std::invalid_argument("ebft: feature_layers is empty");
    layout_.blocks(context.task_shape.input_length);  // throws for sequences too short for one block
  }

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    if (features_.empty()) features_.snapshot(model_);
    if (step != rollout_step_) rollout(step);
    const int64_t n = rollout_.sequences.size(0), L = x_length_;
    auto rows = torch::arange(n, rollout_.sequences.options()).tensor_split(micro_count)[static_cast<size_t>(micro)];
    auto inputs = rollout_.sequences.index_select(0, rows);
    auto logits = model_.forward_with(inputs, layout_.forward_args(L, inputs.size(0), inputs.options()));
    auto generated = logits.index_select(1, logit_positions_);  // [r, B G]
    auto log_probs = (generated.to(torch::kFloat) / options_.temperature).log_softmax(-1);
    auto tokens = rollout_.tokens.index_select(0, rows).reshape({inputs.size(0), -1, 1});
    auto logp = log_probs.gather(2, tokens).squeeze(-1);                    // [r, B G]
    auto mask = token_mask_.index_select(0, rows);                         // [r, B G]
    auto advantage = advantages_.index_select(0, rows).repeat_interleave(options_.block_length, 1);
    auto ratio = (logp - logp.detach()).exp();
    auto per_row = [&](const at::Tensor& t) { return (t * mask).sum(1) / mask.sum(1).clamp_min(1); };
    auto loss = options_.rl_coef * per_row(-ratio * advantage).mean();
    // Cross-entropy of the ground truth, from the x part of the same forward (causal over x).
    // Scaled so that the micro-batches' weighted sum is the token mean over the whole batch.
    auto targets = x_targets_.index_select(0, rows);
    auto nll = at::cross_entropy_loss(logits.narrow(1, 0, L).reshape({-1, logits.size(-1)}).to(torch::kFloat),
                                      targets.reshape({-1}), {}, at::Reduction::Sum, -100);
    auto ce = nll / x_scored_tokens_ * (static_cast<double>(n) / static_cast<double>(rows.size(0)));
    if (options_.ce_coef > 0) loss = loss + options_.ce_coef * ce;
    if (options_.kl_coef > 0) {
      auto delta = logp - reference_logp_.index_select(0, rows);
      loss = loss + options_.kl_coef * per_row((-delta).exp() - 1 + delta).mean();
    }
    auto metrics = metrics_;
    metrics.emplace_back("ce", ce.item<double>());
    return {loss, metrics, static_cast<double>(rows.size(0)) / static_cast<double>(n)};
  }

  void evaluate(int64_t step) override {
    // Validation cross-entropy of the ground truth (as `ce` records it) and, on verifiable tasks, greedy
    // correctness through the sampler (as grpo records it): the paper's two downstream measures.
    for (const auto& split : task_.eval_splits()) {
      auto batch = task_.eval_batch(split);
      auto logits = model_.forward(batch.inputs);
      recorder_.metric("eval." + split + ".loss", step,
                       at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), batch.targets.reshape({-1}),
                                         {}, at::Reduction::Mean, -100).item<double>());
    }
    if (verifiable()) assay::record_greedy_correct(task_, model_, recorder_, step, task_.completion_format(), seed_);
  }

  void save(torch::serialize::OutputArchive& archive) const override { features_.save(archive); }
  void load(torch::serialize::InputArchive& archive) override { features_.load(archive, model_); }

 private:
  bool verifiable() {
    try {
      task_.completion_format();
      return true;
    } catch (const std::logic_error&) {
      return false;
    }
  }

  /// The feature network's hidden states at feature_layers, concatenated: [R, T, F].
  at::Tensor hidden(const at::Tensor& inputs) { return torch::cat(model_.hidden_states(inputs, options_.feature_layers), -1).to(torch::kFloat); }

  /// Block features: hidden [R, T, F] and block starts [R, M] -> [R, M, F], each pooled over the G states
  /// from its start.
  at::Tensor pool(const at::Tensor& states, const at::Tensor& starts) const {
    const int64_t G = options_.block_length, R = states.size(0), M = starts.size(1), F = states.size(-1);
    auto offsets = (starts.unsqueeze(-1) + torch::arange(G, starts.options())).reshape({R, M * G, 1});
    auto block = states.gather(1, offsets.expand({R, M * G, F})).reshape({R, M, G, F});
    return options_.pooling == "last" ? block.select(2, G - 1) : block.mean(2);
  }

  void rollout(int64_t step) {
    rollout_step_ = step;
    auto batch = task_.train_batch(step);
    auto x = batch.inputs;
    TORCH_CHECK(batch.targets.dim() == 2, "ebft: the task must give per-token targets [B, T] (a sequence task)");
    const int64_t S = x.size(0), L = x.size(1), B = layout_.blocks(L), G = options_.block_length, n = options_.rollouts;
    x_length_ = L;
    assay::SamplerOptions o;
    o.temperature = options_.temperature;
    o.top_p = options_.top_p;
    rollout_ = assay::sample_blocks(model_, x, layout_, n, o, seed_ * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(step));
    logit_positions_ = layout_.logit_positions(L, x.options()).reshape({-1});
    x_targets_ = batch.targets.repeat_interleave(n, 0);
    x_scored_tokens_ = std::max(1.0, x_targets_.ne(-100).sum().item<double>());
    // A block counts when its ground-truth continuation starts on a scored token (not padding).
    auto starts = torch::arange(B, x.options()) * options_.stride + options_.context;  // [B]
    auto live = batch.targets.index_select(1, starts - 1).ne(-100).repeat_interleave(n, 0);  // [N, B]
    token_mask_ = live.to(torch::kFloat).repeat_interleave(G, 1);  // [N, B G], block k's G tokens together

    torch::NoGradGuard no_grad;
    const int64_t N = S * n, longest = layout_.start(B - 1) + G;
    // Rollout features: each (rollout, block) as its own causal sequence: context, then the G tokens.
    auto x_rows = rollout_.sequences.narrow(1, 0, L);  // [N, L]
    auto blocks = at::zeros({N, B, longest}, x.options());
    for (int64_t k = 0; k < B; ++k) {
      const int64_t start = layout_.start(k);
      blocks.select(1, k).narrow(1, 0, start).copy_(x_rows.narrow(1, 0, start));
      blocks.select(1, k).narrow(1, start, G).copy_(rollout_.tokens.select(1, k));
    }
    auto block_starts = starts.repeat({N}).unsqueeze(1);  // [N B, 1]
    auto [phi, phi_star] = features_.with(model_, [&] {
      auto rollout_features = pool(hidden(blocks.reshape({N * B, longest})), block_starts).reshape({S, n, B, -1});
      return std::make_pair(rollout_features, pool(hidden(x), starts.unsqueeze(0).expand({S, B})));  // [S, n, B, F], [S, B, F]
    });
    // Groups: (sequence, block), n rollouts each.
    auto group_features = phi.permute({0, 2, 1, 3}).reshape({S * B, n, -1});
    auto group_targets = phi_star.reshape({S * B, -1});
    at::Tensor targets = group_targets.unsqueeze(1).expand_as(group_features);
    if (options_.whiten) std::tie(group_features, targets) = ebft::whiten(group_features, group_targets);
    auto t = ebft::terms(group_features, targets);
    auto advantages = ebft::advantages(t, options_.alignment_coef, options_.diversity_coef);  // [S B, n]
    advantages_ = advantages.reshape({S, B, n}).permute({0, 2, 1}).reshape({N, B}).to(torch::kFloat);

    auto live_groups = live.reshape({S, n, B}).select(1, 0).reshape({S * B}).to(torch::kFloat);  // [S B]
    const double groups = std::max(1.0, live_groups.sum().item<double>());
    auto mean = [&](const at::Tensor& per_group) { return (per_group.mean(1) * live_groups).sum().item<double>() / groups; };
    const double alignment = mean(t.alignment / 2), diversity = mean(t.diversity / 2);
    metrics_ = {{"alignment", alignment}, {"diversity", diversity}, {"effective_reward", alignment - diversity / 2},
                {"reward", mean(ebft::rewards(t, options_.alignment_coef, options_.diversity_coef))}};
    if (options_.kl_coef > 0) {
      reference_logp_ = features_.with(model_, [&] {
        auto logits = model_.forward_with(rollout_.sequences, layout_.forward_args(L, N, x.options()));
        auto log_probs = (logits.index_select(1, logit_positions_).to(torch::kFloat) / options_.temperature).log_softmax(-1);
        return log_probs.gather(2, rollout_.tokens.reshape({N, -1, 1})).squeeze(-1);
      });
    }
  }

  Options options_;
  uint64_t seed_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::BlockLayout layout_;
  assay::ReferencePolicy features_;  // the frozen feature network (and KL reference): the stage's starting weights
  assay::BlockSamples rollout_;
  at::Tensor logit_positions_, x_targets_, token_mask_, advantages_, reference_logp_;
  int64_t x_length_ = 0;
  double x_scored_tokens_ = 1;
  std::vector<std::pair<std::string, double>> metrics_;
  int64_t rollout_step_ = -1;
};

}  // namespace

ASSAY_PLUGIN("ebft", "1.0.0") {
  plugin.add<Ebft>("ebft", "energy-based fine-tuning: feature matching on strided block-parallel rollouts (REINFORCE, RLOO)");
}
