// Expert iteration on a verifiable task (Anthony et al. 2017; STaR, Zelikman et al. 2022; ReST-EM, Singh
// et al. 2023): rounds of (sample, filter, fine-tune).
//
// The stage's steps form rounds of `round_steps` optimizer steps, counted from the stage's first step. At
// the first step of a round: prompts_per_round prompts from task.train_prompts(<the round's first step>),
// samples_per_prompt completions each from the core sampler (at the current weights), each scored by the
// task; the verified-correct (prompt, completion) pairs, de-duplicated (expert_iteration_data.hpp), become
// the round's SFT dataset (with `accumulate`, added to the earlier rounds' pairs). With from = "base" the
// model is then reset to the weights it had at the stage's start (an assay::ReferencePolicy, kept in
// checkpoints). Each step of the round minimizes the cross-entropy of the completion tokens (the prompt is
// context only) of `batch_size` pairs, drawn without replacement from a seeded shuffle of the dataset.
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "expert_iteration_data.hpp"

namespace {

using expert_iteration::Pair;

// Purpose tags of the SplitMix64 streams (mixed with the round's first step).
constexpr uint64_t kSubsampleStream = 0xe100000000000000ULL, kShuffleStream = 0xe200000000000000ULL;

// Fisher-Yates shuffle of 0..n-1 with a platform-independent generator.
std::vector<int64_t> permutation(int64_t n, assay::SplitMix64 rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.uniform(0, i))]);
  return order;
}

class ExpertIteration : public assay::Algorithm {
 public:
  struct Options {
    int64_t round_steps = 20;
    int64_t prompts_per_round = 64;
    int64_t samples_per_prompt = 8;
    int64_t batch_size = 32;
    int64_t max_kept = 0;
    int64_t max_per_prompt = 0;
    bool accumulate = false;
    std::string from = "current";
    double temperature = 1.0;
    int64_t top_k = 0;
    double top_p = 1.0;
    int64_t max_new_tokens = 0;
    void fields(assay::Fields& f) {
      f("round_steps", round_steps, "SFT steps per round (a round samples, filters, then fine-tunes)").min(1);
      f("prompts_per_round", prompts_per_round, "prompts sampled at the start of each round").min(1);
      f("samples_per_prompt", samples_per_prompt, "completions sampled per prompt (k)").min(1);
      f("batch_size", batch_size, "kept pairs per SFT step (all of them when fewer are kept)").min(1);
      f("max_kept", max_kept, "most pairs in the SFT dataset; 0 = no limit (a seeded subset of a round's "
                              "new pairs; with accumulate, the oldest pairs leave first)").min(0);
      f("max_per_prompt", max_per_prompt, "most distinct correct completions kept per distinct prompt and round; 0 = no limit").min(0);
      f("accumulate", accumulate, "keep the earlier rounds' pairs too (de-duplicated across rounds)");
      f("from", from, "what each round fine-tunes: current (the weights as they are) | base (the weights at "
                      "the stage's start, restored after sampling)").choices({"current", "base"});
      f("temperature", temperature, "sampling temperature").min(1e-6);
      f("top_k", top_k, "sampling: the k most likely tokens; 0 = all").min(0);
      f("top_p", top_p, "sampling: nucleus mass").range(1e-6, 1);
      f("max_new_tokens", max_new_tokens, "longest completion; 0 = the task's completion_format()").min(0);
    }
  };

  ExpertIteration(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), device_(context.device), task_(*context.task), model_(*context.model),
        recorder_(*context.recorder) {
    format_ = task_.completion_format();  // throws for a task that is not verifiable
    if (options_.max_new_tokens > 0) format_.max_new_tokens = options_.max_new_tokens;
    if (format_.max_new_tokens <= 0) throw std::invalid_argument("expert_iteration: set max_new_tokens (the task names no completion length)");
  }

  assay::StepOutput loss(int64_t step, int micro, int micro_count) override {
    if (first_step_ < 0) first_step_ = step;  // the stage's first step (a resumed run gets it from load)
    if (from_base() && reference_.empty()) reference_.snapshot(model_);
    const int64_t round = (step - first_step_) / options_.round_steps;
    if (round != round_) start_round(round);
    if (pairs_.empty()) return {zero(), metrics(), 0};  // nothing verified this round: no update
    if (step != batch_step_) choose_batch(step);
    auto rows = batch_.tensor_split(micro_count)[static_cast<size_t>(micro)];
    if (rows.size(0) == 0) return {zero(), {}, 0};  // fewer pairs than micro-batches
    auto [nll, tokens] = expert_iteration::completion_nll(model_, data_, rows.to(data_.prompts.device()), format_.pad_token);
    return {nll / static_cast<double>(tokens), metrics(), static_cast<double>(tokens) / static_cast<double>(batch_tokens_)};
  }

  void evaluate(int64_t step) override {
    // Greedy exact match on every eval split, through the sampler (as grpo records it).
    assay::record_greedy_correct(task_, model_, recorder_, step, format_, seed_);
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    archive.write("expert_iteration.first_step", torch::tensor(first_step_, torch::kLong));
    archive.write("expert_iteration.round", torch::tensor(round_, torch::kLong));
    archive.write("expert_iteration.metrics", torch::tensor(metric_values_, torch::kDouble));
    std::vector<int64_t> prompt_lengths, completion_lengths, prompt_tokens, completion_tokens;
    for (const auto& p : pairs_) {
      prompt_lengths.push_back(static_cast<int64_t>(p.prompt.size()));
      completion_lengths.push_back(static_cast<int64_t>(p.completion.size()));
      prompt_tokens.insert(prompt_tokens.end(), p.prompt.begin(), p.prompt.end());
      completion_tokens.insert(completion_tokens.end(), p.completion.begin(), p.completion.end());
    }
    archive.write("expert_iteration.prompt_lengths", torch::tensor(prompt_lengths, torch::kLong));
    archive.write("expert_iteration.completion_lengths", torch::tensor(completion_lengths, torch::kLong));
    archive.write("expert_iteration.prompt_tokens", torch::tensor(prompt_tokens, torch::kLong));
    archive.write("expert_iteration.completion_tokens", torch::tensor(completion_tokens, torch::kLong));
    if (from_base()) reference_.save(archive);
  }

  void load(torch::serialize::InputArchive& archive) override {
    auto read = [&](const std::string& key) {
      at::Tensor t;
      archive.read("expert_iteration." + key, t);
      return t.contiguous();
    };
    first_step_ = read("first_step").item<int64_t>();
    round_ = read("round").item<int64_t>();
    auto values = read("metrics");
    metric_values_.assign(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
    auto prompt_lengths = read("prompt_lengths"), completion_lengths = read("completion_lengths");
    auto prompt_tokens = read("prompt_tokens"), completion_tokens = read("completion_tokens");
    pairs_.clear();
    const int64_t *pt = prompt_tokens.data_ptr<int64_t>(), *ct = completion_tokens.data_ptr<int64_t>();
    const int64_t *pls = prompt_lengths.data_ptr<int64_t>(), *cls = completion_lengths.data_ptr<int64_t>();
    for (int64_t i = 0; i < prompt_lengths.numel(); ++i) {
      const int64_t pl = pls[i], cl = cls[i];
      pairs_.push_back({{pt, pt + pl}, {ct, ct + cl}});
      pt += pl;
      ct += cl;
    }
    data_ = expert_iteration::to_tensors(pairs_, format_.pad_token, device_);
    batch_step_ = -1;
    if (from_base()) reference_.load(archive, model_);
  }

 private:
  bool from_base() const { return options_.from == "base"; }

  assay::SamplerOptions sampler_options() const {
    auto o = assay::completion_options(format_);
    o.temperature = options_.temperature;
    o.top_k = options_.top_k;
    o.top_p = options_.top_p;
    return o;
  }

  int64_t round_start(int64_t round) const { return first_step_ + round * options_.round_steps; }

  // Sample, score, filter; then (from = base) put the stage's starting weights back.
  void start_round(int64_t round) {
    round_ = round;
    const int64_t start = round_start(round);
    auto prompts = task_.train_prompts(start, options_.prompts_per_round);
    auto rollout = assay::roll_out(task_, model_, prompts, options_.samples_per_prompt, sampler_options(),
                                   seed_ * 0xbf58476d1ce4e5b9ULL + static_cast<uint64_t>(start));
    std::set<Pair> seen;
    if (options_.accumulate) seen.insert(pairs_.begin(), pairs_.end());
    auto fresh = expert_iteration::correct_pairs(rollout, seen, options_.max_per_prompt);
    const auto cap = static_cast<size_t>(options_.max_kept);
    if (cap > 0 && fresh.size() > cap) {  // a seeded subset, in rollout order
      auto order = permutation(static_cast<int64_t>(fresh.size()), assay::SplitMix64(seed_, kSubsampleStream ^ static_cast<uint64_t>(start)));
      order.resize(cap);
      std::sort(order.begin(), order.end());
      std::vector<Pair> subset;
      for (auto i : order) subset.push_back(std::move(fresh[static_cast<size_t>(i)]));
      fresh = std::move(subset);
    }
    const auto added = static_cast<double>(fresh.size());
    if (!options_.accumulate) pairs_.clear();
    pairs_.insert(pairs_.end(), std::make_move_iterator(fresh.begin()), std::make_move_iterator(fresh.end()));
    if (cap > 0 && pairs_.size() > cap) pairs_.erase(pairs_.begin(), pairs_.end() - static_cast<std::ptrdiff_t>(cap));
    data_ = expert_iteration::to_tensors(pairs_, format_.pad_token, device_);
    batch_step_ = -1;
    metric_values_ = {rollout.rewards.mean().item<double>(), rollout.correct_share(), expert_iteration::coverage(rollout),
                      static_cast<double>(pairs_.size()), added,
                      rollout.samples.lengths.to(torch::kDouble).mean().item<double>()};
    if (from_base()) reset_to_reference();
  }

  // The model's parameters := the reference's (the stage's starting weights). The optimizer's state is left
  // as it is (see docs/rl.md).
  void reset_to_reference() {
    std::vector<at::Tensor> start;
    reference_.with(model_, [&] {
      for (const auto& p : model_.parameters()) start.push_back(p.detach().clone());
    });
    torch::NoGradGuard no_grad;
    auto params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(start[i]);
  }

  // This step's rows: positions (step - round start) * b + [0, b) of the concatenation of seeded shuffles
  // of the dataset (one per epoch), b = min(batch_size, pairs): a pure function of (seed, round, step).
  void choose_batch(int64_t step) {
    batch_step_ = step;
    const auto M = static_cast<int64_t>(pairs_.size()), b = std::min(options_.batch_size, M);
    const int64_t start = round_start(round_), first = (step - start) * b;
    std::vector<int64_t> rows;
    std::vector<int64_t> order;
    int64_t epoch = -1;
    batch_tokens_ = 0;
    for (int64_t position = first; position < first + b; ++position) {
      if (position / M != epoch) {
        epoch = position / M;
        order = permutation(M, assay::SplitMix64(seed_ ^ (static_cast<uint64_t>(start) * 0x9e3779b97f4a7c15ULL),
                                                 kShuffleStream ^ static_cast<uint64_t>(epoch)));
      }
      rows.push_back(order[static_cast<size_t>(position % M)]);
      batch_tokens_ += static_cast<int64_t>(pairs_[static_cast<size_t>(rows.back())].completion.size());
    }
    batch_ = torch::tensor(rows, torch::kLong);
  }

  std::vector<std::pair<std::string, double>> metrics() const {
    static const char* names[] = {"reward", "correct", "coverage", "kept", "kept_new", "completion_length"};
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 0; i < metric_values_.size(); ++i) out.emplace_back(names[i], metric_values_[i]);
    return out;
  }

  at::Tensor zero() const { return torch::zeros({}, torch::TensorOptions().device(device_).requires_grad(true)); }

  Options options_;
  uint64_t seed_;
  c10::Device device_;
  assay::Task& task_;
  assay::Model& model_;
  assay::Recorder& recorder_;
  assay::CompletionFormat format_;
  assay::ReferencePolicy reference_;      // from = base: the stage's starting weights
  std::vector<Pair> pairs_;               // the SFT dataset
  expert_iteration::PairTensors data_;    // pairs_ as tensors on the device
  std::vector<double> metric_values_;     // the current round's, in the order of metrics()
  int64_t first_step_ = -1, round_ = -1;  // the stage's first step; the current round (0-based)
  int64_t batch_step_ = -1, batch_tokens_ = 0;
  at::Tensor batch_;                      // int64 [b]: this step's rows of the dataset
};

}  // namespace

ASSAY_PLUGIN("expert_iteration", "1.0.0") {
  plugin.add<ExpertIteration>("expert_iteration", "expert iteration: sample k per prompt, keep de-duplicated verified-correct completions, SFT on them (from the current or the stage's starting weights), repeat");
}
