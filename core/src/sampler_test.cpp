#include <assay/sampler.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "sampling_support.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

constexpr int64_t kVocab = 13;

// A small gpt in float64 (so that cached and uncached logits agree to ~1e-15 and ties cannot flip a draw).
std::shared_ptr<Model> model(const std::string& position = "learned", uint64_t seed = 0) {
  Context context;
  context.task_shape = {kVocab, kVocab, 48};
  torch::manual_seed(seed);
  Values overrides{{"width", int64_t{32}}, {"heads", int64_t{4}}, {"init", std::string("torch")}, {"position", position}};
  auto m = testing::plugins().create<Model>("gpt", testing::values_of(Kind::model, "gpt", overrides), context);
  m->to(torch::kDouble);
  return m;
}

// Right-padded prompts of lengths 5, 2, 7 (the padding holds junk, which must not matter).
std::pair<at::Tensor, at::Tensor> prompts() {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(9);
  return {torch::randint(kVocab, {3, 7}, generator, torch::kLong), torch::tensor({5, 2, 7}, torch::kLong)};
}

SamplerOptions options(int64_t max_new = 12) {
  SamplerOptions o;
  o.max_new_tokens = max_new;
  return o;
}

TEST(Sampler, CachedGenerationEqualsRecomputingTheSequence) {
  for (const std::string position : {"learned", "rope"}) {
    auto m = model(position);
    auto [tokens, lengths] = prompts();
    auto o = options();
    o.temperature = 0.8;
    o.top_k = 6;
    o.top_p = 0.9;
    o.stop_tokens = {3};
    auto cached = sample(*m, tokens, lengths, o, 5);
    o.kv_cache = false;
    auto recomputed = sample(*m, tokens, lengths, o, 5);
    EXPECT_TRUE(torch::equal(cached.tokens, recomputed.tokens)) << position;
    EXPECT_TRUE(torch::equal(cached.lengths, recomputed.lengths)) << position;
    EXPECT_LT((cached.logprobs - recomputed.logprobs).abs().max().item<double>(), 1e-12) << position;
  }
}

TEST(Sampler, Float32CachedGenerationEqualsRecomputing) {
  auto m = model("rope");
  m->to(torch::kFloat);
  auto [tokens, lengths] = prompts();
  auto o = options(16);
  auto cached = sample(*m, tokens, lengths, o, 11);
  o.kv_cache = false;
  auto recomputed = sample(*m, tokens, lengths, o, 11);
  EXPECT_TRUE(torch::equal(cached.tokens, recomputed.tokens));
  EXPECT_LT((cached.logprobs - recomputed.logprobs).abs().max().item<double>(), 1e-5);
}

TEST(Sampler, PaddedBatchGeneratesWhatEachPromptGeneratesAlone) {
  auto m = model();
  auto [tokens, lengths] = prompts();
  auto o = options();
  o.greedy = true;
  auto batch = sample(*m, tokens, lengths, o, 0);
  for (int64_t b = 0; b < 3; ++b) {
    auto alone = sample(*m, tokens.slice(0, b, b + 1).slice(1, 0, lengths[b].item<int64_t>()), {}, o, 0);
    EXPECT_TRUE(torch::equal(alone.tokens[0], batch.tokens[b])) << b;
    EXPECT_LT((alone.logprobs[0] - batch.logprobs[b]).abs().max().item<double>(), 1e-10) << b;
  }
}

TEST(Sampler, LogprobsAreThoseOfTheModelOnTheGeneratedSequence) {
  auto m = model();
  auto [tokens, lengths] = prompts();
  auto o = options(8);
  o.temperature = 1.7;
  auto s = sample(*m, tokens, lengths, o, 3);
  for (int64_t b = 0; b < 3; ++b) {
    const auto n = lengths[b].item<int64_t>();
    auto full = torch::cat({tokens[b].slice(0, 0, n), s.tokens[b]}).unsqueeze(0);
    auto logp = (m->forward(full)[0] / 1.7).log_softmax(-1);
    for (int64_t i = 0; i < 8; ++i) {
      EXPECT_NEAR(s.logprobs[b][i].item<double>(), logp[n - 1 + i][s.tokens[b][i]].item<double>(), 1e-5);
    }
  }
}

TEST(Sampler, GreedyTakesTheArgmaxAndTopKOneIsGreedy) {
  auto m = model();
  auto [tokens, lengths] = prompts();
  auto o = options(6);
  o.greedy = true;
  auto greedy = sample(*m, tokens, lengths, o, 0);
  auto full = torch::cat({tokens[2], greedy.tokens[2]}).unsqueeze(0);
  auto predicted = m->forward(full)[0].argmax(-1);
  EXPECT_TRUE(torch::equal(predicted.slice(0, 6, 12), greedy.tokens[2]));
  o.greedy = false;
  o.top_k = 1;
  EXPECT_TRUE(torch::equal(sample(*m, tokens, lengths, o, 7).tokens, greedy.tokens));
}

TEST(Sampler, DeterministicUnderTheSeed) {
  auto m = model();
  auto [tokens, lengths] = prompts();
  auto a = sample(*m, tokens, lengths, options(), 1), b = sample(*m, tokens, lengths, options(), 1);
  EXPECT_TRUE(torch::equal(a.tokens, b.tokens));
  EXPECT_FALSE(torch::equal(a.tokens, sample(*m, tokens, lengths, options(), 2).tokens));
}

// First-token frequencies over many sequences against softmax(logits / T), and the top-k / top-p supports.
TEST(Sampler, DrawsFromTheTemperedTruncatedDistribution) {
  auto m = model();
  const int64_t n = 20000;
  auto prompt = torch::tensor({{1, 4, 2}}, torch::kLong);
  auto probs = (m->forward(prompt)[0][2] / 1.5).softmax(-1);
  auto o = options(1);
  o.temperature = 1.5;
  auto counts = torch::bincount(sample(*m, prompt.expand({n, 3}).contiguous(), {}, o, 4).tokens.reshape({-1}), {}, kVocab);
  auto expected = probs * n;
  // Each count within 5 standard deviations of its binomial mean.
  auto sd = (expected * (1 - probs)).sqrt();
  EXPECT_TRUE(((counts.to(torch::kDouble) - expected).abs() <= 5 * sd + 1).all().item<bool>()) << counts << expected;

  o.top_k = 3;
  auto support = std::get<1>(probs.topk(3));
  auto drawn = sample(*m, prompt.expand({2000, 3}).contiguous(), {}, o, 5).tokens.reshape({-1});
  EXPECT_TRUE(torch::isin(drawn, support).all().item<bool>());
  EXPECT_EQ(std::get<0>(at::_unique(drawn)).size(0), 3);

  o.top_k = 0;
  o.top_p = 0.5;
  auto [sorted, order] = probs.sort(-1, true);
  const auto nucleus = ((sorted.cumsum(0) - sorted) < 0.5).sum().item<int64_t>();  // smallest set holding 0.5
  drawn = sample(*m, prompt.expand({2000, 3}).contiguous(), {}, o, 6).tokens.reshape({-1});
  EXPECT_TRUE(torch::isin(drawn, order.slice(0, 0, nucleus)).all().item<bool>());
  EXPECT_LE(std::get<0>(at::_unique(drawn)).size(0), nucleus);
}

TEST(Sampler, StopTokensEndSequences) {
  auto m = model();
  auto [tokens, lengths] = prompts();
  auto o = options(20);
  o.temperature = 3.0;  // flat enough that every token, the stop token too, comes up
  o.stop_tokens = {0, 1};
  o.pad_token = 12;
  auto s = sample(*m, tokens, lengths, o, 8);
  for (int64_t b = 0; b < 3; ++b) {
    const auto n = s.lengths[b].item<int64_t>();
    auto row = s.tokens[b];
    auto generated = row.slice(0, 0, n);
    const bool stopped = n > 0 && (generated[n - 1].item<int64_t>() <= 1);
    EXPECT_TRUE(stopped || n == 20) << row;
    EXPECT_EQ(torch::isin(generated.slice(0, 0, n - 1), torch::tensor({0, 1})).sum().item<int64_t>(), 0) << row;
    EXPECT_TRUE((row.slice(0, n) == 12).all().item<bool>()) << row;
    EXPECT_TRUE((s.logprobs[b].slice(0, n) == 0).all().item<bool>());
    EXPECT_TRUE((s.logprobs[b].slice(0, 0, n) < 0).all().item<bool>());
  }
  EXPECT_LT(s.lengths.sum().item<int64_t>(), 60) << "no sequence stopped: the test checks nothing";
}

TEST(Sampler, RestoresTheModelModeAndRejectsBadInput) {
  auto m = model();
  m->train();
  auto [tokens, lengths] = prompts();
  sample(*m, tokens, lengths, options(2), 0);
  EXPECT_TRUE(m->is_training());
  auto o = options();
  o.top_p = 0;
  EXPECT_THROW(sample(*m, tokens, lengths, o, 0), std::invalid_argument);
  EXPECT_THROW(sample(*m, tokens, torch::tensor({5, 0, 7}), options(), 0), std::invalid_argument);
  EXPECT_THROW(sample(*m, tokens.to(torch::kInt), lengths, options(), 0), std::invalid_argument);
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST(Sampler, CudaGeneratesWhatCpuGenerates) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto m = model("rope");
  auto [tokens, lengths] = prompts();
  auto o = options(16);
  o.temperature = 0.9;
  auto cpu = sample(*m, tokens, lengths, o, 21);
  m->to(torch::kCUDA);
  for (bool kv_cache : {true, false}) {
    o.kv_cache = kv_cache;
    auto cuda = sample(*m, tokens.cuda(), lengths.cuda(), o, 21);
    EXPECT_TRUE(torch::equal(cuda.tokens.cpu(), cpu.tokens)) << kv_cache;
    EXPECT_LT((cuda.logprobs.cpu() - cpu.logprobs).abs().max().item<double>(), 1e-6) << kv_cache;  // float32 log-probs
  }
}

// roll_out's layout: each prompt repeated `group` times. Encoding each distinct prompt once and repeating its
// cache rows must sample what encoding every row does (float64: the same tokens, log-probs to rounding).
TEST(Sampler, GroupedPrefillSamplesWhatEveryRowsPrefillDoes) {
  auto m = model();
  auto [tokens, lengths] = prompts();  // lengths 5, 2, 7: padded
  const int64_t group = 4;
  auto repeated = tokens.repeat_interleave(group, 0), repeated_lengths = lengths.repeat_interleave(group, 0);
  for (const bool greedy : {false, true}) {
    auto o = options(10);
    o.greedy = greedy;
    o.temperature = 0.9;
    auto plain = sample(*m, repeated, repeated_lengths, o, 5);
    auto grouped = sample_groups(*m, repeated, repeated_lengths, group, o, 5);
    EXPECT_TRUE(torch::equal(grouped.tokens, plain.tokens)) << greedy;
    EXPECT_TRUE(torch::equal(grouped.lengths, plain.lengths));
    EXPECT_TRUE(torch::allclose(grouped.logprobs, plain.logprobs, 1e-6, 1e-6));
    if (!greedy) EXPECT_FALSE(torch::equal(grouped.tokens[0], grouped.tokens[1]));  // a group's samples differ
  }
  EXPECT_THROW(sample_groups(*m, repeated.narrow(0, 0, 7), repeated_lengths.narrow(0, 0, 7), group, options(4), 0), std::invalid_argument);
}

}  // namespace
}  // namespace assay
