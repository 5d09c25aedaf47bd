#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "rsa_polite_model.hpp"
#include "test_support.hpp"

namespace assay {
namespace {

using namespace rsa_polite;

const std::string kPapers = std::string(ASSAY_SOURCE_DIR) + "/../shared/papers/";
const std::string kHumanCounts = kPapers + "human_production_counts.csv";
const std::string kSemantics = kPapers + "literal_semantics.csv";

// The mean literal semantics m[u][s] read back from the shipped CSV by hand (no plugin code).
Semantics shipped_semantics() {
  std::ifstream in(kSemantics);
  EXPECT_TRUE(in) << "missing " << kSemantics << " (the paper data beside the repository)";
  Semantics m{};
  std::string line;
  std::getline(in, line);  // utterance,state,beta_a,beta_b,mean
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string utterance, state, a, b, mean;
    std::getline(row, utterance, ',');
    std::getline(row, state, ',');
    std::getline(row, a, ',');
    std::getline(row, b, ',');
    std::getline(row, mean, ',');
    const auto u = std::find(kUtteranceNames.begin(), kUtteranceNames.end(), utterance) - kUtteranceNames.begin();
    m[u][std::stoi(state)] = std::stod(mean);
  }
  return m;
}

// ---- A direct float64 transcription of the model, in probabilities (not logs), with explicit loops over
// the joint (state, phi) as infsocpres.wppl enumerates it.
struct Reference {
  double P[8], L0[8][4], S1[4][40][8], L1[8][4][40];
  Reference(const Semantics& m, double alpha, double cost) {
    double z = 0;
    for (int u = 0; u < 8; ++u) z += P[u] = std::exp(u >= 4 ? -cost : -1.0);
    for (double& p : P) p /= z;
    for (int u = 0; u < 8; ++u) {
      double total = 0;
      for (int s = 0; s < 4; ++s) total += m[u][s];
      for (int s = 0; s < 4; ++s) L0[u][s] = m[u][s] / total;
    }
    for (int s = 0; s < 4; ++s) {
      for (int b = 0; b < 40; ++b) {
        const double phi = 0.025 * b;
        double norm = 0;
        for (int u = 0; u < 8; ++u) {
          double expected = 0;
          for (int t = 0; t < 4; ++t) expected += t * L0[u][t];
          S1[s][b][u] = P[u] * std::exp(alpha * (phi * std::log(L0[u][s]) + (1 - phi) * expected));
          norm += S1[s][b][u];
        }
        for (int u = 0; u < 8; ++u) S1[s][b][u] /= norm;
      }
    }
    for (int u = 0; u < 8; ++u) {
      double norm = 0;
      for (int s = 0; s < 4; ++s)
        for (int b = 0; b < 40; ++b) norm += L1[u][s][b] = S1[s][b][u];  // uniform priors on s and phi
      for (int s = 0; s < 4; ++s)
        for (int b = 0; b < 40; ++b) L1[u][s][b] /= norm;
    }
    alpha_ = alpha;
  }
  double L1_state(int u, int s) const {
    double p = 0;
    for (int b = 0; b < 40; ++b) p += L1[u][s][b];
    return p;
  }
  double L1_phi(int u, int b) const {
    double p = 0;
    for (int s = 0; s < 4; ++s) p += L1[u][s][b];
    return p;
  }
  std::array<double, 8> S2(int s, double w_inf, double w_soc, double w_pres, int phi_bin) const {
    std::array<double, 8> out;
    double norm = 0;
    for (int u = 0; u < 8; ++u) {
      double expected = 0;
      for (int t = 0; t < 4; ++t) expected += t * L1_state(u, t);
      out[u] = P[u] * std::exp(alpha_ * (w_inf * std::log(L1_state(u, s)) + w_soc * expected +
                                         w_pres * std::log(L1_phi(u, phi_bin))));
      norm += out[u];
    }
    for (double& p : out) p /= norm;
    return out;
  }
  double alpha_;
};

TEST(RsaPolite, ListenersAndSpeakersMatchADirectTranscriptionOfTheFormulas) {
  Semantics random_semantics;
  SplitMix64 rng(7);
  for (auto& row : random_semantics)
    for (double& v : row) v = 0.01 + 0.99 * rng.uniform01();
  for (const Semantics& m : {shipped_semantics(), random_semantics}) {
    const LiteralListener l0 = literal_listener(m);
    for (auto [alpha, cost] : {std::pair{4.47, 2.64}, std::pair{0.5, 1.0}, std::pair{15.0, 8.0}}) {
      const Reference ref(m, alpha, cost);
      const auto log_prior = log_utterance_prior(cost);
      for (int u = 0; u < 8; ++u) {
        EXPECT_NEAR(std::exp(log_prior[u]), ref.P[u], 1e-14);
        for (int s = 0; s < 4; ++s) EXPECT_NEAR(l0.prob[u][s], ref.L0[u][s], 1e-14);
      }
      for (int s = 0; s < 4; ++s) {
        for (int b : {0, 7, 20, 39}) {
          const auto s1 = log_speaker1(l0, alpha, log_prior, s, phi_of(b));
          for (int u = 0; u < 8; ++u) EXPECT_NEAR(std::exp(s1[u]), ref.S1[s][b][u], 1e-12) << s << " " << b << " " << u;
        }
      }
      const PragmaticListener l1 = pragmatic_listener(l0, alpha, cost);
      for (int u = 0; u < 8; ++u) {
        for (int s = 0; s < 4; ++s) EXPECT_NEAR(std::exp(l1.log_state[u][s]), ref.L1_state(u, s), 1e-12);
        for (int b = 0; b < 40; ++b) EXPECT_NEAR(std::exp(l1.log_phi[u][b]), ref.L1_phi(u, b), 1e-12);
      }
      for (auto w : {Weights{0.36, 0.11, 0.54}, Weights{1, 0, 0}, Weights{0, 1, 0}, Weights{0, 0, 1}}) {
        // The likelihood of counts for all phi_S1 at once (what the sampler uses) is the sum of n ln S2.
        Scenario counts;
        for (auto& row : counts)
          for (double& c : row) c = std::floor(10 * rng.uniform01());
        const auto by_phi = goal_log_likelihood_by_phi(l1, alpha, cost, counts, w);
        for (int b = 0; b < 40; ++b) {
          double expected = 0;
          for (int s = 0; s < 4; ++s) {
            const auto p = ref.S2(s, w.inf, w.soc, w.pres, b);
            for (int u = 0; u < 8; ++u) expected += counts[s][u] * std::log(p[u]);
          }
          EXPECT_NEAR(by_phi[b], expected, 1e-9 * std::abs(expected) + 1e-9) << b;
          EXPECT_NEAR(goal_log_likelihood(l1, alpha, cost, counts, w, b), expected, 1e-9 * std::abs(expected) + 1e-9) << b;
        }
        for (int s = 0; s < 4; ++s) {
          for (int b : {0, 14, 39}) {
            const auto expected = ref.S2(s, w.inf, w.soc, w.pres, b);
            const auto got = log_speaker2(l1, alpha, cost, s, w, b);
            for (int u = 0; u < 8; ++u) EXPECT_NEAR(std::exp(got[u]), expected[u], 1e-11) << s << " " << b << " " << u;
          }
        }
      }
    }
  }
}

// The speaker behaves as the paper describes: a purely informative S2 says the literally true thing,
// a purely social one praises, and negations get rarer as they get costlier.
TEST(RsaPolite, PureGoalsProduceThePredictedUtterances) {
  const LiteralListener l0 = literal_listener(shipped_semantics());
  const PragmaticListener l1 = pragmatic_listener(l0, 5, 2);
  auto argmax = [](const PerUtterance& p) { return static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin()); };
  EXPECT_EQ(kUtteranceNames[argmax(log_speaker2(l1, 5, 2, 0, {1, 0, 0}, 20))], "yes_terrible");
  EXPECT_EQ(kUtteranceNames[argmax(log_speaker2(l1, 5, 2, 3, {1, 0, 0}, 20))], "yes_amazing");
  EXPECT_EQ(kUtteranceNames[argmax(log_speaker2(l1, 5, 2, 0, {0, 1, 0}, 20))], "yes_amazing");
  double negations_cheap = 0, negations_costly = 0;
  const PragmaticListener costly = pragmatic_listener(l0, 5, 6);
  const auto p_cheap = log_speaker2(l1, 5, 2, 0, {0.4, 0.2, 0.4}, 14), p_costly = log_speaker2(costly, 5, 6, 0, {0.4, 0.2, 0.4}, 14);
  for (int u = 4; u < 8; ++u) negations_cheap += std::exp(p_cheap[u]), negations_costly += std::exp(p_costly[u]);
  EXPECT_GT(negations_cheap, negations_costly);
}

// ---- The analyzer through the registry.

struct Fit {
  testing::MemoryRecorder recorder;
  double get(const std::string& name) const { return recorder.last("rsa." + name); }
};

std::unique_ptr<Fit> run_fit(const std::string& counts, const Values& overrides, uint64_t seed = 0) {
  auto fit = std::make_unique<Fit>();
  Context context;
  context.seed = seed;
  context.recorder = &fit->recorder;
  Values values = {{"counts", counts}, {"semantics", kSemantics}};
  for (const auto& [k, v] : overrides) values[k] = v;
  auto analyzer = testing::plugins().create<Analyzer>("rsa_polite", testing::values_of(Kind::analyzer, "rsa_polite", values), context);
  analyzer->on_end(0);
  analyzer->on_end(1);  // the data do not change: fitted once
  return fit;
}

std::string write_counts(const std::string& name, const Counts& n) {
  std::ostringstream csv;
  csv.precision(17);
  csv << "goal,state,utterance,count\n";
  for (int g = 0; g < kGoals; ++g)
    for (int s = 0; s < kStates; ++s)
      for (int u = 0; u < kUtterances; ++u) csv << kGoalNames[g] << "," << s << "," << kUtteranceNames[u] << "," << n[g][s][u] << "\n";
  return testing::write_file(testing::temp_dir(name) / "counts.csv", csv.str());
}

TEST(RsaPolite, RecoversKnownParametersFromSimulatedCounts) {
  Draw truth;
  truth.alpha = 4.0;
  truth.cost = 2.5;
  truth.weights = {Weights{0.6, 0.05, 0.35}, Weights{0.15, 0.6, 0.25}, Weights{0.35, 0.2, 0.45}};
  truth.phi_bin = {28, 8, 16};  // phi 0.7, 0.2, 0.4
  truth.semantics = shipped_semantics();
  // Multinomial draws of 1000 choices per scenario (5x the human data) from S2 at the truth.
  const Counts p = predictions(truth);
  Counts n{};
  SplitMix64 rng(11);
  for (int g = 0; g < kGoals; ++g)
    for (int s = 0; s < kStates; ++s)
      for (int i = 0; i < 1000; ++i) {
        double r = rng.uniform01(), acc = 0;
        int u = 0;
        while (u < kUtterances - 1 && (acc += p[g][s][u]) <= r) ++u;
        n[g][s][u] += 1;
      }
  const auto fit = run_fit(write_counts("rsa_recovery", n), {{"semantics_prior", std::string("mean")}, {"chains", int64_t{2}},
                                                              {"burn", int64_t{2000}}, {"samples", int64_t{2000}}});
  // Every 95% interval holds the truth (0.01 of slack), and the means are close to it.
  auto recovered = [&](const std::string& name, double truth, double tolerance) {
    EXPECT_NEAR(fit->get(name + ".mean"), truth, tolerance) << name;
    EXPECT_LE(fit->get(name + ".lo"), truth + 0.01) << name;
    EXPECT_GE(fit->get(name + ".hi"), truth - 0.01) << name;
    EXPECT_LT(fit->get(name + ".rhat"), 1.1) << name;
  };
  recovered("alpha", truth.alpha, 0.2);
  recovered("cost", truth.cost, 0.15);
  for (int g = 0; g < kGoals; ++g) {
    const std::string goal = kGoalNames[g];
    recovered(goal + ".w_inf", truth.weights[g].inf, 0.07);
    recovered(goal + ".w_soc", truth.weights[g].soc, 0.07);
    recovered(goal + ".w_pres", truth.weights[g].pres, 0.07);
    recovered(goal + ".phi", phi_of(truth.phi_bin[g]), 0.1);
  }
  EXPECT_GT(fit->get("fit.r2"), 0.99);
}

TEST(RsaPolite, HumanDataWithMeanSemanticsWeightsEachGoalsOwnUtility) {
  const auto fit = run_fit(kHumanCounts, {{"semantics_prior", std::string("mean")}, {"chains", int64_t{2}},
                                          {"burn", int64_t{1000}}, {"samples", int64_t{1000}}});
  auto w = [&](const std::string& goal, const std::string& utility) { return fit->get(goal + ".w_" + utility + ".mean"); };
  EXPECT_GT(w("informative", "inf"), w("informative", "soc"));
  EXPECT_GT(w("informative", "inf"), w("informative", "pres"));
  EXPECT_GT(w("social", "soc"), w("social", "inf"));
  EXPECT_GT(w("social", "soc"), w("social", "pres"));
  EXPECT_GT(w("both", "pres"), 0.2);
  EXPECT_GT(fit->get("fit.r2"), 0.7);
}

// With the Beta semantics inferred jointly (the original model) the fit is the paper's: r^2 near its 0.97,
// presentational utility substantial in every goal, social utility ordered social > both > informative
// (~0 for the informative goal), and a more informational phi projected under the informative goal.
// The posterior has two modes (alpha ~3.5 with w_inf ~ w_pres, alpha ~5.5 with w_pres dominant, as the
// paper's chains disagreed); these claims hold in both. Short chains: one chain of 1200 sweeps.
TEST(RsaPolite, HumanDataWithBetaSemanticsReproducesThePapersPattern) {
  const auto fit = run_fit(kHumanCounts, {{"chains", int64_t{1}}, {"burn", int64_t{600}}, {"samples", int64_t{600}}});
  auto w = [&](const std::string& goal, const std::string& utility) { return fit->get(goal + ".w_" + utility + ".mean"); };
  EXPECT_GT(fit->get("fit.r2"), 0.95);
  for (const auto& goal : kGoalNames) EXPECT_GT(w(goal, "pres"), 0.25) << goal;
  EXPECT_GT(w("social", "soc"), w("both", "soc"));
  EXPECT_GT(w("both", "soc"), w("informative", "soc"));
  EXPECT_LT(w("informative", "soc"), 0.05);
  EXPECT_GT(fit->get("informative.phi.mean"), fit->get("social.phi.mean"));
}

// The 12 scenarios as one-token questions (token i = scenario i, named "<goal>/<state>") with the eight
// utterances as options (tokens 12..19, named as the utterances, in reverse order to check the mapping).
class Scenarios : public Task, public MultipleChoice {
 public:
  TaskShape shape() const override { return {20, 20, 1}; }
  Batch train_batch(int64_t) override { throw std::logic_error("unused"); }
  std::vector<std::string> eval_splits() const override { return {"test"}; }
  Batch eval_batch(std::string_view) override { throw std::logic_error("unused"); }
  ChoiceFormat choice_format() const override {
    ChoiceFormat f;
    for (int u = kUtterances - 1; u >= 0; --u) {
      f.option_tokens.push_back(12 + u);
      f.option_names.push_back(kUtteranceNames[static_cast<size_t>(u)]);
    }
    return f;
  }
  ChoiceQuestions choice_questions(std::string_view, Perturbation) override {
    ChoiceQuestions q;
    q.prompts = {torch::arange(12, torch::kLong).unsqueeze(1), torch::ones({12}, torch::kLong)};
    q.correct = torch::full({12}, -1, torch::kLong);
    q.misleading = q.correct.clone();
    for (int g = 0; g < kGoals; ++g)
      for (int s = 0; s < kStates; ++s) q.names.push_back(kGoalNames[static_cast<size_t>(g)] + (question_separator + std::to_string(s)));
    return q;
  }
  std::string question_separator = "/";
};

// A model whose choices are the RSA speaker's at known parameters: the fit of its distributions (as 1000
// choices per scenario) recovers them, at every eval (one fit per checkpoint).
TEST(RsaPolite, FitsAModelsChoiceDistributions) {
  Draw truth;
  truth.alpha = 3.0;
  truth.cost = 1.5;
  truth.weights = {Weights{0.7, 0.1, 0.2}, Weights{0.1, 0.7, 0.2}, Weights{0.3, 0.3, 0.4}};
  truth.phi_bin = {30, 10, 20};
  truth.semantics = shipped_semantics();
  const Counts p = predictions(truth);
  auto table = torch::full({20, 20}, -30.0, torch::kDouble);
  for (int g = 0; g < kGoals; ++g)
    for (int s = 0; s < kStates; ++s)
      for (int u = 0; u < kUtterances; ++u) table[g * kStates + s][12 + u] = std::log(p[g][s][u]);
  testing::BigramModel model(table);
  Scenarios task;
  Fit fit;
  Context context;
  context.task = &task;
  context.model = &model;
  context.recorder = &fit.recorder;
  Values values = {{"source", std::string("model")}, {"pseudo_count", 1000.0}, {"semantics", kSemantics},
                   {"counts", std::string("/not/read.csv")}, {"semantics_prior", std::string("mean")}, {"chains", int64_t{2}},
                   {"burn", int64_t{1500}}, {"samples", int64_t{1500}}};
  auto analyzer = testing::plugins().create<Analyzer>("rsa_polite", testing::values_of(Kind::analyzer, "rsa_polite", values), context);
  analyzer->on_eval(0);
  analyzer->on_eval(10);
  analyzer->on_end(10);  // already fitted at step 10
  EXPECT_EQ(fit.recorder.metrics.at("rsa.alpha.mean").size(), 2u);
  EXPECT_EQ(fit.recorder.rows.at("observed").size(), 2u);
  // The observed proportions are the model's distributions.
  auto observed = fit.recorder.rows.at("observed").back().second;
  EXPECT_NEAR(observed[1][2][3].item<double>(), p[1][2][3], 1e-9);
  EXPECT_NEAR(fit.get("alpha.mean"), truth.alpha, 0.3);
  for (int g = 0; g < kGoals; ++g) {
    const std::string goal = kGoalNames[static_cast<size_t>(g)];
    EXPECT_NEAR(fit.get(goal + ".w_inf.mean"), truth.weights[g].inf, 0.08) << goal;
    EXPECT_NEAR(fit.get(goal + ".w_soc.mean"), truth.weights[g].soc, 0.08) << goal;
    EXPECT_NEAR(fit.get(goal + ".w_pres.mean"), truth.weights[g].pres, 0.08) << goal;
  }
  EXPECT_GT(fit.get("fit.r2"), 0.99);

  task.question_separator = "-";  // names the analyzer cannot map
  try {
    testing::plugins().create<Analyzer>("rsa_polite", testing::values_of(Kind::analyzer, "rsa_polite", values), context);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected <goal>/<state>"), std::string::npos) << e.what();
  }
  testing::EchoTask echo;
  context.task = &echo;
  EXPECT_THROW(testing::plugins().create<Analyzer>("rsa_polite", testing::values_of(Kind::analyzer, "rsa_polite", values), context),
               std::invalid_argument);
}

TEST(RsaPolite, ReportsUnreadableAndMalformedTables) {
  Context context;
  testing::MemoryRecorder recorder;
  context.recorder = &recorder;
  auto make = [&](const Values& values) {
    return testing::plugins().create<Analyzer>("rsa_polite", testing::values_of(Kind::analyzer, "rsa_polite", values), context);
  };
  auto message = [&](const Values& values) {
    try {
      make(values);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto dir = testing::temp_dir("rsa_bad");
  EXPECT_NE(message({{"counts", std::string("no/such.csv")}, {"semantics", kSemantics}}).find("resolved against the working directory"),
            std::string::npos);
  const auto bad_utterance = testing::write_file(dir / "u.csv", "goal,state,utterance,count\nboth,0,yes_fine,3\n");
  EXPECT_NE(message({{"counts", bad_utterance}, {"semantics", kSemantics}}).find("unknown utterance 'yes_fine'"), std::string::npos);
  const auto bad_goal = testing::write_file(dir / "g.csv", "goal,state,utterance,count\nrude,0,yes_bad,3\n");
  EXPECT_NE(message({{"counts", bad_goal}, {"semantics", kSemantics}}).find("unknown goal 'rude'"), std::string::npos);
  const auto bad_state = testing::write_file(dir / "s.csv", "goal,state,utterance,count\nboth,4,yes_bad,3\n");
  EXPECT_NE(message({{"counts", bad_state}, {"semantics", kSemantics}}).find("state must be 0..3"), std::string::npos);
  const auto no_count = testing::write_file(dir / "c.csv", "goal,state,utterance\nboth,1,yes_bad\n");
  EXPECT_NE(message({{"counts", no_count}, {"semantics", kSemantics}}).find("no column 'count'"), std::string::npos);
  const auto partial_semantics = testing::write_file(dir / "m.csv", "utterance,state,mean\nyes_bad,0,0.9\n");
  EXPECT_NE(message({{"counts", kHumanCounts}, {"semantics", partial_semantics}}).find("no column 'beta_a'"), std::string::npos);
  EXPECT_NE(message({{"counts", kHumanCounts}, {"semantics", partial_semantics}, {"semantics_prior", std::string("mean")}}).find("lacks"),
            std::string::npos);
}

}  // namespace
}  // namespace assay
