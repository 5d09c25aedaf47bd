#include <assay/block_sampling.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

constexpr int64_t kVocab = 13;

std::shared_ptr<Model> model(const std::string& position, uint64_t seed = 0) {
  Context context;
  context.task_shape = {kVocab, kVocab, 64};
  torch::manual_seed(seed);
  Values overrides{{"width", int64_t{32}}, {"heads", int64_t{4}}, {"init", std::string("torch")}, {"position", position}};
  auto m = testing::plugins().create<Model>("gpt", testing::values_of(Kind::model, "gpt", overrides), context);
  m->to(torch::kDouble);  // so that ties cannot flip a greedy choice between the two ways of computing
  return m;
}

at::Tensor sequences(int64_t count, int64_t length, uint64_t seed = 3) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(kVocab, {count, length}, generator, torch::kLong);
}

TEST(BlockSampling, LayoutCountsBlocksAndRejectsShortSequences) {
  BlockLayout layout{8, 8, 8};
  EXPECT_EQ(layout.blocks(64), 7);  // the paper's L = 64, C = G = s = 8
  EXPECT_EQ(layout.blocks(16), 1);
  EXPECT_EQ((BlockLayout{2, 4, 4}.blocks(13)), 3);  // (13 - 4 - 4) / 2 + 1, rounded down
  EXPECT_THROW(layout.blocks(15), std::invalid_argument);
  EXPECT_THROW((BlockLayout{0, 8, 8}.blocks(64)), std::invalid_argument);
}

// The mask, position by position, against the rule written out with loops.
TEST(BlockSampling, EveryGeneratedTokenSeesItsContextItselfAndItsBlocksEarlierTokens) {
  const BlockLayout layout{3, 4, 2};
  const int64_t L = 12, B = layout.blocks(L), T = L + B * layout.length;
  ASSERT_EQ(B, 3);
  auto mask = layout.attention_mask(L, torch::kLong);
  auto positions = layout.position_ids(L, torch::kLong);
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{T, T}));
  for (int64_t q = 0; q < T; ++q) {
    for (int64_t k = 0; k < T; ++k) {
      bool expected;
      if (q < L) {
        expected = k <= q;
      } else {
        const int64_t block = (q - L) % B, step = (q - L) / B;
        const bool in_context = k < block * layout.stride + layout.context;
        const bool own_earlier = k >= L && (k - L) % B == block && (k - L) / B <= step;
        expected = in_context || own_earlier;
      }
      EXPECT_EQ(mask[q][k].item<bool>(), expected) << "query " << q << " key " << k;
    }
    const int64_t expected_position = q < L ? q : ((q - L) % B) * layout.stride + layout.context + (q - L) / B;
    EXPECT_EQ(positions[q].item<int64_t>(), expected_position) << q;
  }
  // The logits predicting token t of block k: the context's last token, then the block's previous token.
  auto logit_positions = layout.logit_positions(L, torch::kLong);
  EXPECT_EQ(logit_positions[1][0].item<int64_t>(), 1 * 3 + 4 - 1);
  EXPECT_EQ(logit_positions[2][1].item<int64_t>(), L + 0 * B + 2);
}

TEST(BlockSampling, GreedyBlockParallelGenerationEqualsEachBlockAlone) {
  for (const std::string position : {"learned", "rope"}) {
    auto m = model(position);
    const BlockLayout layout{5, 6, 4};
    auto x = sequences(2, 27);  // B = (27 - 4 - 6) / 5 + 1 = 4
    SamplerOptions greedy;
    greedy.greedy = true;
    auto parallel = sample_blocks(*m, x, layout, 2, greedy, 0);
    auto alone = sample_blocks_one_by_one(*m, x, layout, 2, greedy, 0);
    ASSERT_EQ(parallel.tokens.sizes(), (std::vector<int64_t>{4, 4, 4}));
    EXPECT_TRUE(torch::equal(parallel.tokens, alone.tokens)) << position;
    EXPECT_TRUE(torch::allclose(parallel.logprobs, alone.logprobs, 1e-6, 1e-6)) << position;  // float log-probs
    EXPECT_TRUE(torch::equal(parallel.sequences, alone.sequences));
    // The tokens differ between blocks (else the test could not tell blocks apart).
    EXPECT_FALSE(torch::equal(parallel.tokens.select(1, 0), parallel.tokens.select(1, 1)));
  }
}

TEST(BlockSampling, ATrainingForwardUnderTheMaskReproducesTheSamplingLogProbs) {
  auto m = model("learned");
  const BlockLayout layout{4, 4, 3};
  auto x = sequences(3, 18);
  SamplerOptions o;
  o.temperature = 0.8;
  auto rollouts = sample_blocks(*m, x, layout, 2, o, 11);
  const int64_t L = x.size(1);
  auto logits = m->forward_with(rollouts.sequences, layout.forward_args(L, rollouts.sequences.size(0), torch::kLong));
  auto at = layout.logit_positions(L, torch::kLong).reshape({-1});
  auto log_probs = (logits.index_select(1, at) / o.temperature).log_softmax(-1);
  auto picked = log_probs.gather(2, rollouts.tokens.reshape({rollouts.tokens.size(0), -1, 1})).squeeze(-1);
  EXPECT_TRUE(torch::allclose(picked.to(torch::kFloat), rollouts.logprobs.reshape_as(picked), 1e-5, 1e-5));
  // x's own logits are the plain causal LM's.
  EXPECT_TRUE(torch::allclose(logits.narrow(1, 0, L), m->forward(rollouts.sequences.narrow(1, 0, L)), 1e-10, 1e-10));
  // Rollouts of one sequence differ; sampling is deterministic given the seed.
  EXPECT_FALSE(torch::equal(rollouts.tokens[0], rollouts.tokens[1]));
  EXPECT_TRUE(torch::equal(sample_blocks(*m, x, layout, 2, o, 11).tokens, rollouts.tokens));
}

}  // namespace
}  // namespace assay
