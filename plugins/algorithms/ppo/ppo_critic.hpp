// PPO's critic: V(state before completion token t) = a linear head on a model's last hidden state at the
// position that predicts token t. "separate": the head sits on its own copy of the model's weights (taken at
// the stage's start, as the echo-chamber paper initializes its critic from the same checkpoint), swapped
// into the model while the critic runs, so no second model object is needed; "head": the head reads the
// policy's own hidden state, detached (a value probe of the policy's features: the value loss never moves
// the policy). Either way the critic trains with its own AdamW, inside the algorithm's step, apart from the
// host's optimizer and gradient clipping.
#pragma once
#include <assay/components.hpp>
#include <assay/rollout.hpp>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "ppo_objective.hpp"

namespace ppo {

/// The critic runs in full precision: its gradient is taken apart from the host's fp16 loss scaling, and its
/// values feed the advantages. Turns autocast off on `device` for the scope.
class FullPrecision {
 public:
  explicit FullPrecision(c10::DeviceType device) : device_(device), was_enabled_(at::autocast::is_autocast_enabled(device)) {
    at::autocast::set_autocast_enabled(device_, false);
  }
  ~FullPrecision() { at::autocast::set_autocast_enabled(device_, was_enabled_); }
  FullPrecision(const FullPrecision&) = delete;
  FullPrecision& operator=(const FullPrecision&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
};

class Critic {
 public:
  explicit Critic(const PpoOptions& options) : options_(options) {}

  bool empty() const { return !head_weight_.defined(); }

  /// A zero head (V = 0 at the start) and, for a separate critic, a copy of the model's current weights.
  void init(assay::Model& model, const at::Tensor& sample_inputs) {
    torch::NoGradGuard no_grad;
    const int64_t width = model.hidden_states(sample_inputs.slice(0, 0, 1).slice(1, 0, 1), {-1})[0].size(-1);
    auto options = sample_inputs.options().dtype(torch::kFloat);
    head_weight_ = torch::zeros({1, width}, options).requires_grad_(true);
    head_bias_ = torch::zeros({1}, options).requires_grad_(true);
    trunk_.clear();
    if (separate()) {
      for (const auto& p : model.parameters()) trunk_.push_back(p.detach().clone().requires_grad_(true));
    }
    make_optimizer();
  }

  /// Values [n, C] of rollout rows `rows`, without gradients.
  at::Tensor values(assay::Model& model, const assay::Rollout& rollout, const at::Tensor& rows) {
    torch::NoGradGuard no_grad;
    FullPrecision full_precision(rollout.sequences.device().type());
    return with_trunk(model, [&] { return predict(model, rollout, rows); });
  }

  /// One AdamW step on the value loss of the whole rollout (its rows taken in `chunks`, each weighted by its
  /// share of completion tokens, so the gradient is the whole rollout's); returns the loss.
  double update(assay::Model& model, const assay::Rollout& rollout, const std::vector<at::Tensor>& chunks,
                const at::Tensor& old_values, const at::Tensor& returns) {
    FullPrecision full_precision(rollout.sequences.device().type());
    auto parameters = trainable(model);
    std::vector<at::Tensor> gradients(parameters.size());
    const double tokens = std::max(1.0, rollout.mask.sum().item<double>());
    double total = 0;
    with_trunk(model, [&] {
      for (const auto& rows : chunks) {
        auto mask = rollout.mask.index_select(0, rows);
        const double weight = mask.sum().item<double>() / tokens;
        auto loss = value_loss(predict(model, rollout, rows), old_values.index_select(0, rows),
                               returns.index_select(0, rows), mask, options_.value_clip) * weight;
        total += loss.item<double>();
        auto grads = torch::autograd::grad({loss}, parameters, {}, false, false, /*allow_unused=*/true);
        for (size_t i = 0; i < grads.size(); ++i) {
          if (!grads[i].defined()) continue;
          gradients[i] = gradients[i].defined() ? gradients[i] + grads[i] : grads[i];
        }
      }
      return 0;
    });
    // The model's parameters held the critic's weights while the gradients were taken: they belong to the trunk.
    auto owned = owned_parameters();
    for (size_t i = 0; i < owned.size(); ++i) {
      owned[i].mutable_grad() = gradients[i].defined() ? gradients[i] : torch::zeros_like(owned[i]);
    }
    if (options_.critic_grad_clip > 0) torch::nn::utils::clip_grad_norm_(owned, options_.critic_grad_clip);
    optimizer_->step();
    for (auto& p : owned) p.mutable_grad().reset();
    return total;
  }

  void save(torch::serialize::OutputArchive& archive) const {
    if (empty()) return;
    archive.write("critic.head.weight", head_weight_);
    archive.write("critic.head.bias", head_bias_);
    for (size_t i = 0; i < trunk_.size(); ++i) archive.write("critic.trunk." + std::to_string(i), trunk_[i]);
    torch::serialize::OutputArchive optimizer;
    optimizer_->save(optimizer);
    archive.write("critic.optimizer", optimizer);
  }

  void load(torch::serialize::InputArchive& archive, assay::Model& model) {
    at::Tensor weight;
    if (!archive.try_read("critic.head.weight", weight)) return;  // saved before the critic existed
    auto device = model.parameters().front().device();
    auto read = [&](const std::string& key) {
      at::Tensor t;
      archive.read(key, t);
      return t.to(device).requires_grad_(true);
    };
    head_weight_ = weight.to(device).requires_grad_(true);
    head_bias_ = read("critic.head.bias");
    trunk_.clear();
    if (separate()) {
      for (size_t i = 0; i < model.parameters().size(); ++i) trunk_.push_back(read("critic.trunk." + std::to_string(i)));
    }
    make_optimizer();
    torch::serialize::InputArchive optimizer;
    archive.read("critic.optimizer", optimizer);
    optimizer_->load(optimizer);
  }

 private:
  bool separate() const { return options_.critic == "separate"; }

  void make_optimizer() {
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        owned_parameters(), torch::optim::AdamWOptions(options_.critic_lr).weight_decay(options_.critic_weight_decay));
  }

  /// The critic's own tensors: the trunk (separate) then the head.
  std::vector<at::Tensor> owned_parameters() const {
    auto all = trunk_;
    all.push_back(head_weight_);
    all.push_back(head_bias_);
    return all;
  }

  /// What gradients are taken with respect to, in owned_parameters()' order: the model's parameters (holding
  /// the trunk's values while the critic runs) then the head.
  std::vector<at::Tensor> trainable(assay::Model& model) const {
    std::vector<at::Tensor> all;
    if (separate()) all = model.parameters();
    all.push_back(head_weight_);
    all.push_back(head_bias_);
    return all;
  }

  at::Tensor predict(assay::Model& model, const assay::Rollout& rollout, const at::Tensor& rows) {
    auto inputs = rollout.sequences.index_select(0, rows);
    at::Tensor hidden;
    {
      std::optional<torch::NoGradGuard> detached;
      if (!separate()) detached.emplace();
      hidden = model.hidden_states(inputs, {-1})[0];  // [n, T, width]
    }
    auto positions = rollout.positions.index_select(0, rows);  // [n, C]
    auto at_positions = hidden.gather(1, positions.unsqueeze(-1).expand({-1, -1, hidden.size(-1)}));
    return at::linear(at_positions.to(torch::kFloat), head_weight_, head_bias_).squeeze(-1);
  }

  /// Runs f with the trunk's weights in the model (separate critic), exchanging values in place so the
  /// optimizer keeps its tensors; the model's own weights come back bit for bit.
  template <class F>
  std::invoke_result_t<F> with_trunk(assay::Model& model, F&& f) {
    if (!separate()) return f();
    exchange(model);
    struct Restore {
      Critic* self;
      assay::Model& model;
      ~Restore() { self->exchange(model); }
    } restore{this, model};
    return f();
  }

  void exchange(assay::Model& model) {
    torch::NoGradGuard no_grad;
    auto params = model.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      auto held = params[i].detach().clone();
      params[i].detach().copy_(trunk_[i]);
      trunk_[i].detach().copy_(held);
    }
    at::autocast::clear_cache();  // autocast caches weight casts by tensor, not by value (as ReferencePolicy)
  }

  PpoOptions options_;
  at::Tensor head_weight_, head_bias_;
  std::vector<at::Tensor> trunk_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace ppo
