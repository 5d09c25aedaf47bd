#include <assay/multiple_choice.hpp>
#include <assay/sequences.hpp>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"

namespace assay {
namespace {

std::shared_ptr<Task> task(const std::string& csv, Values overrides = {}) {
  static int files = 0;
  overrides["counts"] = testing::write_file(testing::temp_dir("choice_counts") / ("counts" + std::to_string(files++) + ".csv"), csv);
  Context context;
  return testing::plugins().create<Task>("choice_counts", testing::values_of(Kind::task, "choice_counts", overrides), context);
}

const std::string kTable =
    "goal,state,utterance,count\n"
    "kind,0,yes_good,30\n"
    "kind,0,not_bad,10\n"
    "honest,0,not_good,5\n"
    "honest,0,yes_good,0\n"
    "\n"
    "kind,1,not_bad,2.5\n";

TEST(ChoiceCounts, SamplesOptionsWithTheTablesFrequencies) {
  auto t = task(kTable, {{"batch_size", int64_t{4000}}});
  auto vocab = Vocabulary({"SoS", "goal=kind", "goal=honest", "state=0", "state=1", "yes_good", "not_bad", "not_good", "EoS", "PAD"});
  EXPECT_EQ(t->shape().vocab_size, vocab.size());
  std::map<std::string, std::map<std::string, double>> seen;
  auto batch = t->train_batch(0);
  for (int64_t b = 0; b < batch.inputs.size(0); ++b) {
    // inputs "SoS goal state option", targets "-100 -100 option EoS"
    EXPECT_EQ(batch.inputs[b][0].item<int64_t>(), vocab.id("SoS"));
    EXPECT_EQ(batch.targets[b][3].item<int64_t>(), vocab.id("EoS"));
    EXPECT_EQ(batch.targets[b][0].item<int64_t>(), -100);
    const auto scenario = vocab.decode(batch.inputs[b].narrow(0, 1, 2));
    seen[scenario][vocab.symbol(batch.targets[b][2].item<int64_t>())] += 1;
  }
  ASSERT_EQ(seen.size(), 3u);  // uniform over the three scenarios
  for (const auto& [scenario, options] : seen) {
    double total = 0;
    for (const auto& [o, n] : options) total += n;
    EXPECT_NEAR(total / 4000, 1.0 / 3, 0.03) << scenario;
  }
  auto& kind0 = seen["goal=kind state=0"];
  EXPECT_NEAR(kind0["yes_good"] / (kind0["yes_good"] + kind0["not_bad"]), 0.75, 0.04);
  EXPECT_EQ(seen["goal=honest state=0"].count("yes_good"), 0u);  // a count of 0 is never drawn
  EXPECT_EQ(seen["goal=kind state=1"].size(), 1u);
}

TEST(ChoiceCounts, ChoiceQuestionsAreTheScenariosInTableOrder) {
  auto t = task(kTable);
  auto& c = dynamic_cast<MultipleChoice&>(*t);
  auto vocab = Vocabulary({"SoS", "goal=kind", "goal=honest", "state=0", "state=1", "yes_good", "not_bad", "not_good", "EoS", "PAD"});
  auto f = c.choice_format();
  EXPECT_EQ(f.option_names, (std::vector<std::string>{"yes_good", "not_bad", "not_good"}));
  EXPECT_EQ(f.option_tokens, (std::vector<int64_t>{vocab.id("yes_good"), vocab.id("not_bad"), vocab.id("not_good")}));
  EXPECT_EQ(f.answer_marker, -1);
  auto q = c.choice_questions("test", Perturbation::none);
  EXPECT_EQ(q.names, (std::vector<std::string>{"kind/0", "honest/0", "kind/1"}));
  EXPECT_TRUE(q.at_answer_slot);
  EXPECT_TRUE((q.correct == -1).all().item<bool>());
  EXPECT_EQ(vocab.decode(q.prompts.tokens[2]), "SoS goal=kind state=1");
  EXPECT_THROW(c.choice_questions("test", Perturbation::misleading_hint), std::invalid_argument);
  EXPECT_THROW(c.choice_questions("train", Perturbation::none), std::invalid_argument);
}

TEST(ChoiceCounts, BadTablesNameTheFileLineAndColumn) {
  auto message = [](const std::string& csv, const Values& overrides = {}) {
    try {
      task(csv, overrides);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("goal,state,count\nkind,0,3\n").find("no column 'utterance'"), std::string::npos);
  EXPECT_NE(message("goal,state,utterance,count\nkind,0,yes,3\nkind,1,no,-1\n").find(":3: count '-1'"), std::string::npos);
  EXPECT_NE(message("goal,state,utterance,count\nkind,0,yes,3,4\n").find(":2: 5 fields"), std::string::npos);
  EXPECT_NE(message("goal,state,utterance,count\nkind,0,yes,0\n").find("scenario 'kind/0' has no choices"), std::string::npos);
  EXPECT_NE(message("goal,state,utterance,count\n").find("has no rows"), std::string::npos);
  EXPECT_NE(message("goal,state,utterance,count\nkind,0,EoS,1\n").find("EoS"), std::string::npos);
  Context context;
  try {
    testing::plugins().create<Task>("choice_counts", testing::values_of(Kind::task, "choice_counts", {{"counts", std::string("/no/such.csv")}}), context);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read counts = '/no/such.csv'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace assay
