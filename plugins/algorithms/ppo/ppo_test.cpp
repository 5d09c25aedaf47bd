#include <gtest/gtest.h>

#include <torch/torch.h>

#include <sstream>

#include "ppo_objective.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

at::Tensor d(std::initializer_list<std::initializer_list<double>> rows) {
  std::vector<at::Tensor> r;
  for (const auto& row : rows) r.push_back(torch::tensor(std::vector<double>(row), torch::kDouble));
  return torch::stack(r);
}

TEST(Ppo, TokenRewardsPutTheVerdictOnTheLastTokenAndTheKlOnEvery) {
  auto mask = d({{1, 1, 1}, {1, 1, 0}});
  auto old_logp = d({{-1.0, -0.5, -2.0}, {-0.2, -0.3, -9.0}});
  auto ref_logp = d({{-1.5, -0.5, -1.0}, {-0.1, -0.6, -1.0}});
  auto r = ppo::token_rewards(torch::tensor({1.0, 0.5}, torch::kDouble), old_logp, ref_logp, mask, 0.5);
  // -0.5 * (old - ref) per token; + the verdict on the last real token; padding 0.
  auto expected = d({{-0.25, 0.0, 0.5 + 1.0}, {0.05, -0.15 + 0.5, 0.0}});
  EXPECT_TRUE(torch::allclose(r, expected, 0, 1e-12)) << r;
  auto plain = ppo::token_rewards(torch::tensor({1.0, 0.5}, torch::kDouble), old_logp, {}, mask, 0.5);
  EXPECT_TRUE(torch::allclose(plain, d({{0, 0, 1}, {0, 0.5, 0}}), 0, 1e-12));
}

TEST(Ppo, GaeMatchesAHandWorkedRecursion) {
  // One completion of 3 tokens: r = (0, 0, 1), V = (0.2, 0.4, 0.6), gamma 0.9, lambda 0.8.
  auto mask = d({{1, 1, 1, 0}});
  auto rewards = d({{0, 0, 1, 0}});
  auto values = d({{0.2, 0.4, 0.6, 7.0}});  // the value under padding must not leak in
  const double g = 0.9, l = 0.8;
  const double d2 = 1 - 0.6, d1 = 0 + g * 0.6 - 0.4, d0 = 0 + g * 0.4 - 0.2;
  const double a2 = d2, a1 = d1 + g * l * a2, a0 = d0 + g * l * a1;
  auto a = ppo::gae(rewards, values, mask, g, l);
  EXPECT_NEAR(a[0][0].item<double>(), a0, 1e-12);
  EXPECT_NEAR(a[0][1].item<double>(), a1, 1e-12);
  EXPECT_NEAR(a[0][2].item<double>(), a2, 1e-12);
  EXPECT_EQ(a[0][3].item<double>(), 0.0);
}

TEST(Ppo, GaeWithUnitGammaAndLambdaIsTheMonteCarloReturnMinusTheValue) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  auto rewards = torch::randn({5, 6}, generator, torch::kDouble);
  auto values = torch::randn({5, 6}, generator, torch::kDouble);
  auto lengths = torch::tensor({6, 1, 3, 5, 2});
  auto mask = (torch::arange(6).unsqueeze(0) < lengths.unsqueeze(1)).to(torch::kDouble);
  rewards = rewards * mask;
  auto a = ppo::gae(rewards, values, mask, 1.0, 1.0);
  // Reverse cumulative sum of the rewards to the end of each completion.
  auto to_go = rewards.flip(1).cumsum(1).flip(1);
  EXPECT_TRUE(torch::allclose(a, (to_go - values) * mask, 1e-12, 1e-12));
  // lambda = 0: one-step TD errors.
  auto next = torch::cat({values.slice(1, 1) * mask.slice(1, 1), torch::zeros({5, 1}, torch::kDouble)}, 1);
  EXPECT_TRUE(torch::allclose(ppo::gae(rewards, values, mask, 0.7, 0.0), (rewards + 0.7 * next - values) * mask, 1e-12, 1e-12));
}

TEST(Ppo, WhiteningUsesOnlyTheMaskedTokens) {
  auto x = d({{1, 2, 100}, {3, 4, -50}});
  auto mask = d({{1, 1, 0}, {1, 1, 0}});
  auto w = ppo::whiten(x, mask, 0);
  const double mean = 2.5, std = std::sqrt(1.25);  // population std of {1, 2, 3, 4}
  EXPECT_NEAR(w[0][0].item<double>(), (1 - mean) / std, 1e-12);
  EXPECT_NEAR(w[1][1].item<double>(), (4 - mean) / std, 1e-12);
  EXPECT_EQ(w[0][2].item<double>(), 0.0);
}

TEST(Ppo, PolicyAndValueLossesMatchHandComputedValues) {
  auto mask = d({{1, 1}, {1, 0}});
  auto logp = d({{-1.0, -2.0}, {-0.5, -3.0}});
  auto old_logp = d({{-1.5, -2.0}, {-0.1, -2.5}});
  auto advantages = d({{1.0, -1.0}, {2.0, 5.0}});
  // rho = e^0.5 (clipped to 1.2 for A > 0), 1, e^-0.4 (A > 0: min(rho A, clip A) = rho A).
  const double expected = (-1.2 * 1.0 + 1.0 * 1.0 + -std::exp(-0.4) * 2.0) / 3;
  EXPECT_NEAR(ppo::policy_loss(logp, old_logp, advantages, {}, mask, 0.2, 0).item<double>(), expected, 1e-12);
  auto entropy = d({{0.3, 0.6}, {0.9, 5.0}});
  EXPECT_NEAR(ppo::policy_loss(logp, old_logp, advantages, entropy, mask, 0.2, 0.1).item<double>(), expected - 0.1 * 0.6, 1e-12);

  auto values = d({{1.0, 0.0}, {0.5, 3.0}});
  auto old_values = d({{0.5, 0.1}, {0.5, 0.0}});
  auto returns = d({{0.0, 0.0}, {1.0, 0.0}});
  // Unclipped: 0.5 * mean(1, 0, 0.25). Clipped at 0.2: V -> 0.7, 0.0 (|0 - 0.1| < 0.2), 0.5; max of the squares.
  EXPECT_NEAR(ppo::value_loss(values, old_values, returns, mask, 0).item<double>(), 0.5 * (1 + 0 + 0.25) / 3, 1e-12);
  EXPECT_NEAR(ppo::value_loss(values, old_values, returns, mask, 0.2).item<double>(), 0.5 * (1 + 0 + 0.25) / 3, 1e-12);
  auto moving_away = d({{-1.0, 0.0}, {0.5, 0.0}});  // clipped -1 -> 0.3: (0.3 - 0)^2 = 0.09 < 1: the max keeps 1
  auto toward = d({{0.0, 0.0}, {1.0, 0.0}});        // clipped 0 -> 0.3, 1 -> 0.7: squares 0.09 and 0.09 win
  EXPECT_NEAR(ppo::value_loss(moving_away, old_values, returns, mask, 0.2).item<double>(), 0.5 * (1 + 0 + 0.25) / 3, 1e-12);
  EXPECT_NEAR(ppo::value_loss(toward, old_values, returns, mask, 0.2).item<double>(), 0.5 * (0.09 + 0 + 0.09) / 3, 1e-12);
}

// The bandit policy with a constant feature, so a critic can read a hidden state.
class FeaturedBandit : public testing::BanditPolicy {
 public:
  std::vector<at::Tensor> hidden_states(const at::Tensor& inputs, const std::vector<int64_t>& layers) override {
    return std::vector<at::Tensor>(layers.size(), at::ones({inputs.size(0), inputs.size(1), 1}));
  }
};

TEST(Ppo, LearnsTheBanditsBestActionWithEitherCriticAndKlHoldsItBack) {
  for (const std::string critic : {"separate", "head"}) {
    testing::Bandit task;
    FeaturedBandit policy;
    const Values base{{"prompts_per_step", int64_t{4}}, {"group_size", int64_t{8}}, {"critic", critic}, {"critic_lr", 0.05}};
    const double reward = testing::train_bandit("ppo", base, task, policy, 60);
    EXPECT_GT(policy.theta.softmax(0)[3].item<double>(), 0.9) << critic;
    EXPECT_GT(reward, 0.8) << critic;
  }
  testing::Bandit task;
  FeaturedBandit free, held;
  const Values base{{"prompts_per_step", int64_t{4}}, {"group_size", int64_t{8}}};
  testing::train_bandit("ppo", base, task, free, 30);
  Values with_kl = base;
  with_kl["kl_coef"] = 2.0;
  testing::train_bandit("ppo", with_kl, task, held, 30);
  EXPECT_LT(held.theta.softmax(0)[3].item<double>(), free.theta.softmax(0)[3].item<double>() - 0.1);
}

// Prompts of one token j in [0, 5) whose every completion earns j / 4: the return is a known function of
// the prompt, so a critic on a real model's hidden states can learn it.
class PromptValueTask : public Task {
 public:
  TaskShape shape() const override { return {5, 5, 4}; }
  Batch train_batch(int64_t) override { throw std::logic_error("prompt_value: RL only"); }
  std::vector<std::string> eval_splits() const override { return {}; }
  Batch eval_batch(std::string_view) override { throw std::logic_error("prompt_value: no eval"); }
  PromptBatch train_prompts(int64_t step, int64_t count) override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(step));
    return {torch::randint(5, {count, 1}, generator, torch::kLong), at::ones({count}, at::kLong)};
  }
  Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>&) override {
    return {static_cast<double>(prompt.at(0)) / 4, prompt.at(0) == 4};
  }
  CompletionFormat completion_format() const override { return {{}, 0, 3}; }
};

// A tiny gpt on PromptValueTask, for what needs a real model: the critic's weight exchange and its learning.
struct GptSetup : testing::TinyGptOn<PromptValueTask> {
  GptSetup() : TinyGptOn(/*layers=*/1, /*seed=*/1) {}
  std::shared_ptr<Algorithm> ppo(const Values& overrides) { return algorithm("ppo", overrides); }
  std::vector<at::Tensor> weights() {
    std::vector<at::Tensor> w;
    for (const auto& p : model->parameters()) w.push_back(p.detach().clone());
    return w;
  }
};

TEST(Ppo, SeparateCriticLearnsTheReturnsAndLeavesThePolicyBitForBit) {
  GptSetup s;
  const Values options{{"prompts_per_step", int64_t{8}}, {"group_size", int64_t{4}}, {"critic_lr", 3e-3},
                       {"value_clip", 0.0}};
  auto algorithm = s.ppo(options);
  auto before = s.weights();
  std::vector<double> value_losses;
  for (int step = 1; step <= 40; ++step) {  // the policy is never stepped: only the critic learns
    auto out = algorithm->loss(step, 0, 1);
    for (const auto& [name, value] : out.metrics) if (name == "value_loss") value_losses.push_back(value);
  }
  auto after = s.weights();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << i;
  ASSERT_EQ(value_losses.size(), 40u);
  const double first = (value_losses[0] + value_losses[1] + value_losses[2]) / 3;
  const double last = (value_losses[37] + value_losses[38] + value_losses[39]) / 3;
  EXPECT_GT(first, 0.1);  // V = 0 against returns j / 4: 0.5 E[(j / 4)^2] = 0.1875
  EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
}

TEST(Ppo, MicroBatchesAddUpAndSaveLoadContinuesIdentically) {
  GptSetup s;
  const Values options{{"prompts_per_step", int64_t{3}}, {"group_size", int64_t{4}}, {"kl_coef", 0.1},
                       {"epochs", int64_t{2}}};
  auto algorithm = s.ppo(options);
  algorithm->loss(1, 0, 1);
  algorithm->loss(2, 0, 1);
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    algorithm->save(archive);
    archive.save_to(saved);
  }
  auto resumed = s.ppo(options);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    resumed->load(archive);
  }
  // Step 3 starts a rollout (epochs = 2): both updates of the critic start from the same saved state.
  const double whole = algorithm->loss(3, 0, 1).loss.item<double>();
  const double again = resumed->loss(3, 0, 1).loss.item<double>();
  EXPECT_EQ(whole, again);
  // Step 4 reuses step 3's rollout; its micro-batches (weighted) add up to the whole rollout's loss (the
  // critic steps at micro 0, which moves only the next rollout's values). `split` replays steps 3-4 from the
  // same saved state.
  auto split = s.ppo(options);
  {
    std::stringstream copy(saved.str());
    torch::serialize::InputArchive archive;
    archive.load_from(copy);
    split->load(archive);
  }
  EXPECT_EQ(split->loss(3, 0, 1).loss.item<double>(), whole);
  const double one = resumed->loss(4, 0, 1).loss.item<double>();
  double parts = 0;
  for (int micro = 0; micro < 3; ++micro) {
    auto out = split->loss(4, micro, 3);
    parts += out.loss.item<double>() * out.weight;
  }
  EXPECT_NEAR(parts, one, 1e-6);
  // The critic's weights and AdamW state came through the checkpoint: step 5 starts a rollout whose values
  // come from the critic after its steps 3 and 4, in both runs.
  algorithm->loss(4, 0, 1);
  EXPECT_EQ(algorithm->loss(5, 0, 1).loss.item<double>(), resumed->loss(5, 0, 1).loss.item<double>());
}

TEST(Ppo, RefusesATaskWithoutAVerifier) {
  Context context;
  testing::MemoryRecorder recorder;
  auto task = testing::plugins().create<Task>("modular_addition", testing::values_of(Kind::task, "modular_addition"), context);
  FeaturedBandit policy;
  context.task = task.get();
  context.model = &policy;
  context.recorder = &recorder;
  EXPECT_THROW(testing::plugins().create<Algorithm>("ppo", testing::values_of(Kind::algorithm, "ppo"), context), std::exception);
}

}  // namespace
}  // namespace assay
