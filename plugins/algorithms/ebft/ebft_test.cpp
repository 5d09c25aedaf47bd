#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include <assay/block_sampling.hpp>

#include "ebft_reward.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) { return a[0] * b[0] + a[1] * b[1]; }
double cosine(const std::vector<double>& a, const std::vector<double>& b) { return dot(a, b) / std::sqrt(dot(a, a) * dot(b, b)); }

// One group of n 2-D rollout features and a target, worked out with the formulas of the paper.
void check_group(const std::vector<std::vector<double>>& phi, const std::vector<double>& target, double a, double d) {
  const size_t n = phi.size();
  std::vector<double> flat;
  for (const auto& p : phi) flat.insert(flat.end(), p.begin(), p.end());
  auto features = torch::tensor(flat, torch::kDouble).view({1, static_cast<int64_t>(n), 2});
  auto targets = torch::tensor(target, torch::kDouble).view({1, 1, 2}).expand({1, static_cast<int64_t>(n), 2});
  auto t = ebft::terms(features, targets);
  auto r = ebft::rewards(t, a, d);
  auto adv = ebft::advantages(t, a, d);
  std::vector<double> align(n), div(n), reward(n);
  for (size_t j = 0; j < n; ++j) {
    align[j] = 2 * cosine(phi[j], target);
    double others = 0;
    for (size_t k = 0; k < n; ++k) if (k != j) others += dot(phi[j], phi[k]);
    div[j] = 2.0 / static_cast<double>(n - 1) * others;
    reward[j] = a * align[j] - d * div[j];
  }
  double sum_div = 0;
  for (double v : div) sum_div += v;
  for (size_t j = 0; j < n; ++j) {
    double b_align = 0;
    for (size_t k = 0; k < n; ++k) if (k != j) b_align += align[k] / static_cast<double>(n - 1);
    const double b_div = (sum_div - 2 * div[j]) / static_cast<double>(n - 2);
    EXPECT_NEAR(t.alignment[0][j].item<double>(), align[j], 1e-12);
    EXPECT_NEAR(t.diversity[0][j].item<double>(), div[j], 1e-12);
    EXPECT_NEAR(r[0][j].item<double>(), reward[j], 1e-12);
    EXPECT_NEAR(adv[0][j].item<double>(), reward[j] - (a * b_align - d * b_div), 1e-12) << "n " << n << " j " << j;
  }
  // The leave-one-out advantages of a group sum to zero.
  EXPECT_NEAR(adv.sum().item<double>(), 0.0, 1e-12);
}

TEST(Ebft, RewardAndBaselinesMatchHandComputedValuesForThreeAndFourRollouts) {
  check_group({{1, 0}, {0, 2}, {1, 1}}, {2, 1}, 1.0, 1.0);
  check_group({{1, 0}, {0, 2}, {1, 1}, {-1, 3}}, {0.5, -1}, 1.0, 0.5);
  // A worked example, n = 3, a = d = 1: phi = (1,0), (0,2), (1,1); target (1,0).
  // a_j = 2 cos = 2, 0, sqrt(2); d_j = (2/2) sum_k<>j <phi_j, phi_k> = 1, 2, 3; r = 1, -2, sqrt(2) - 3.
  auto t = ebft::terms(torch::tensor({1.0, 0.0, 0.0, 2.0, 1.0, 1.0}, torch::kDouble).view({1, 3, 2}),
                       torch::tensor({1.0, 0.0}, torch::kDouble).view({1, 1, 2}).expand({1, 3, 2}));
  auto r = ebft::rewards(t, 1, 1);
  EXPECT_NEAR(r[0][1].item<double>(), -2.0, 1e-12);
  EXPECT_NEAR(r[0][2].item<double>(), std::sqrt(2.0) - 3, 1e-12);
  // A_0 = 1 - ((0 + sqrt 2) / 2 - (6 - 2) / 1) = 5 - sqrt(2) / 2.
  EXPECT_NEAR(ebft::advantages(t, 1, 1)[0][0].item<double>(), 5 - std::sqrt(2.0) / 2, 1e-12);
  EXPECT_THROW(ebft::advantages(ebft::terms(torch::ones({1, 2, 2}), torch::ones({1, 2, 2})), 1, 1), std::invalid_argument);
  EXPECT_NO_THROW(ebft::advantages(ebft::terms(torch::ones({1, 2, 2}), torch::ones({1, 2, 2})), 1, 0));
}

TEST(Ebft, WhiteningMatchesAnEigendecompositionReference) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(5);
  auto x = torch::randn({3, 4, 6}, generator, torch::kDouble);  // 3 groups, n = 4, F = 6: full row rank
  auto target = torch::randn({3, 6}, generator, torch::kDouble);
  auto [wx, wy] = ebft::whiten(x, target);
  for (int64_t g = 0; g < 3; ++g) {
    // (X X^T)^{-1/2} from the eigendecomposition of the Gram matrix.
    auto [values, vectors] = torch::linalg_eigh(torch::matmul(x[g], x[g].t()));
    auto w = torch::matmul(vectors * values.rsqrt().unsqueeze(0), vectors.t());
    EXPECT_TRUE(torch::allclose(wx[g], torch::matmul(w, x[g]), 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(wy[g], torch::matmul(w, target[g].unsqueeze(0).expand({4, 6})), 1e-9, 1e-9));
    // Whitened rollouts are orthonormal.
    EXPECT_TRUE(torch::allclose(torch::matmul(wx[g], wx[g].t()), torch::eye(4, torch::kDouble), 1e-9, 1e-9));
  }
  // A rank-deficient group (two equal rollouts): the pseudo-inverse drops the null direction, no NaN.
  auto twin = x.slice(0, 0, 1).clone();
  twin[0][1].copy_(twin[0][0]);
  auto [wt, unused] = ebft::whiten(twin, target.slice(0, 0, 1));
  (void)unused;
  EXPECT_FALSE(torch::isnan(wt).any().item<bool>());
}

// Ground-truth sequences of length 20 over 11 tokens, next-token targets (the last ignored).
class SequenceStub : public Task {
 public:
  TaskShape shape() const override { return {11, 11, 20}; }
  Batch train_batch(int64_t step) override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(step) + 100);
    auto x = torch::randint(11, {3, 20}, generator, torch::kLong);
    auto targets = torch::cat({x.narrow(1, 1, 19), torch::full({3, 1}, -100, torch::kLong)}, 1);
    return {x, targets};
  }
  std::vector<std::string> eval_splits() const override { return {"val"}; }
  Batch eval_batch(std::string_view) override { return train_batch(-1); }
};

struct GptOnSequences : testing::TinyGptOn<SequenceStub> {
  GptOnSequences() : TinyGptOn(/*layers=*/2, /*seed=*/2) { model->to(torch::kDouble); }
  std::shared_ptr<Algorithm> ebft(Values overrides) {
    overrides.emplace("stride", int64_t{4});
    overrides.emplace("context", int64_t{4});
    overrides.emplace("block_length", int64_t{4});
    return algorithm("ebft", overrides);
  }
};

TEST(Ebft, OnPolicyLossIsMinusTheMeanAdvantageAndTheCeTermIsTheLanguageModelsLoss) {
  GptOnSequences s;
  // The leave-one-out advantages of each group sum to zero and every block here is live, so the REINFORCE
  // term's value (ratio = 1) is -mean(A) = 0 ...
  auto rl = s.ebft({{"rollouts", int64_t{3}}, {"feature_layers", std::vector<int64_t>{1, -1}}, {"pooling", std::string("mean")}});
  auto out = rl->loss(1, 0, 1);
  EXPECT_NEAR(out.loss.item<double>(), 0.0, 1e-6);
  // ... while its gradient is not zero.
  out.loss.backward();
  double grad = 0;
  for (const auto& p : s.model->parameters()) if (p.grad().defined()) grad += p.grad().abs().sum().item<double>();
  EXPECT_GT(grad, 0.0);
  std::map<std::string, double> metrics(out.metrics.begin(), out.metrics.end());
  for (const char* name : {"alignment", "diversity", "effective_reward", "reward", "ce"}) EXPECT_TRUE(metrics.count(name)) << name;
  EXPECT_NEAR(metrics["effective_reward"], metrics["alignment"] - metrics["diversity"] / 2, 1e-12);
  // The CE term, from the x part of the strided forward, is the plain LM's cross-entropy on x.
  auto ce_only = s.ebft({{"rl_coef", 0.0}, {"ce_coef", 1.0}, {"diversity_coef", 0.0}, {"rollouts", int64_t{2}}});
  auto batch = s.task.train_batch(1);
  auto logits = s.model->forward(batch.inputs);
  const double expected = at::cross_entropy_loss(logits.reshape({-1, 11}).to(torch::kFloat), batch.targets.reshape({-1})).item<double>();
  EXPECT_NEAR(ce_only->loss(1, 0, 1).loss.item<double>(), expected, 1e-5);
}

// The whole step against a reference written block by block from the paper's formulas, without the
// strided mask or any batched layout: each block's features and log-probs from its own causal sequence.
// Equal gradients mean the rollout's rows, blocks and tokens met the right advantages.
TEST(Ebft, GradientEqualsAReferenceBuiltBlockByBlock) {
  GptOnSequences s;
  const int64_t n = 3, C = 4, G = 4, stride = 4;
  auto algorithm = s.ebft({{"rollouts", n}});
  auto out = algorithm->loss(1, 0, 1);
  s.model->zero_grad();
  out.loss.backward();
  std::vector<at::Tensor> grads;
  for (const auto& p : s.model->parameters()) grads.push_back(p.grad().clone());

  // The same rollout: ebft samples with seed * 0x9e3779b97f4a7c15 + step.
  auto x = s.task.train_batch(1).inputs;
  const int64_t S = x.size(0), L = x.size(1), B = (L - G - C) / stride + 1, N = S * n;
  SamplerOptions o;
  auto rollouts = sample_blocks(*s.model, x, {stride, C, G}, n, o, 2 * 0x9e3779b97f4a7c15ULL + 1);
  auto hidden_last = [&](const at::Tensor& sequence) {  // the last position's final hidden state
    torch::NoGradGuard no_grad;
    return s.model->hidden_states(sequence.unsqueeze(0), {-1})[0][0][-1].to(torch::kDouble);
  };
  std::vector<std::vector<at::Tensor>> phi(N, std::vector<at::Tensor>(B)), truth(S, std::vector<at::Tensor>(B));
  for (int64_t k = 0; k < B; ++k) {
    const int64_t start = k * stride + C;
    for (int64_t i = 0; i < S; ++i) truth[i][k] = hidden_last(x[i].narrow(0, 0, start + G));
    for (int64_t r = 0; r < N; ++r) phi[r][k] = hidden_last(torch::cat({x[r / n].narrow(0, 0, start), rollouts.tokens[r][k]}));
  }
  at::Tensor reference = torch::zeros({}, torch::kDouble);
  for (int64_t i = 0; i < S; ++i) {
    for (int64_t k = 0; k < B; ++k) {
      std::vector<double> a(n), d(n);
      for (int64_t j = 0; j < n; ++j) {
        a[j] = 2 * torch::cosine_similarity(phi[i * n + j][k], truth[i][k], 0).item<double>();
        double dots = 0;
        for (int64_t m = 0; m < n; ++m) if (m != j) dots += phi[i * n + j][k].dot(phi[i * n + m][k]).item<double>();
        d[j] = 2.0 / static_cast<double>(n - 1) * dots;
      }
      const double sum_a = a[0] + a[1] + a[2], sum_d = d[0] + d[1] + d[2];
      for (int64_t j = 0; j < n; ++j) {
        const double advantage = (a[j] - d[j]) - ((sum_a - a[j]) / static_cast<double>(n - 1) - (sum_d - 2 * d[j]) / static_cast<double>(n - 2));
        const int64_t r = i * n + j, start = k * stride + C;
        auto sequence = torch::cat({x[i].narrow(0, 0, start), rollouts.tokens[r][k]});
        auto log_probs = s.model->forward(sequence.unsqueeze(0))[0].narrow(0, start - 1, G).to(torch::kFloat).log_softmax(-1);
        auto logp = log_probs.gather(1, rollouts.tokens[r][k].unsqueeze(1)).sum();
        reference = reference - advantage * logp / static_cast<double>(N * B * G);
      }
    }
  }
  s.model->zero_grad();
  reference.backward();
  auto params = s.model->parameters();
  for (size_t p = 0; p < params.size(); ++p) {
    EXPECT_TRUE(torch::allclose(grads[p], params[p].grad(), 1e-4, 1e-6)) << "parameter " << p;
  }
}

TEST(Ebft, MicroBatchesAddUpAndTheFeatureNetworkStaysFrozen) {
  GptOnSequences s;
  const Values options{{"rollouts", int64_t{3}}, {"ce_coef", 0.5}, {"kl_coef", 0.1}, {"whiten", true}};
  auto algorithm = s.ebft(options);
  algorithm->loss(1, 0, 1);  // the step's rollout, features and advantages from the starting weights
  {
    torch::NoGradGuard no_grad;
    for (auto& p : s.model->parameters()) p.add_(0.01 * torch::randn_like(p));  // as if an optimizer stepped
  }
  // Step 2 samples from the new weights but scores features with the frozen starting weights; split into
  // micro-batches, its weighted losses add up to the whole.
  const double whole = algorithm->loss(2, 0, 1).loss.item<double>();
  double parts = 0;
  for (int micro = 0; micro < 3; ++micro) {
    auto out = algorithm->loss(2, micro, 3);
    parts += out.loss.item<double>() * out.weight;
  }
  EXPECT_NEAR(parts, whole, 1e-6);  // float log-probs
  auto fresh = s.ebft(options);  // snapshots the moved weights as its feature network: other rewards
  auto out = algorithm->loss(2, 0, 1);
  std::map<std::string, double> a(out.metrics.begin(), out.metrics.end());
  auto fresh_out = fresh->loss(2, 0, 1);
  std::map<std::string, double> b(fresh_out.metrics.begin(), fresh_out.metrics.end());
  EXPECT_NE(a["alignment"], b["alignment"]);
}

TEST(Ebft, RejectsADiversityTermWithTwoRollouts) {
  GptOnSequences s;
  EXPECT_THROW(s.ebft({{"rollouts", int64_t{2}}, {"diversity_coef", 1.0}}), std::invalid_argument);
}

}  // namespace
}  // namespace assay
