// rsa_polite: fits the polite-speech RSA model (rsa_polite_model.hpp; ../shared/papers/polite-speech-rsa.md)
// to utterance choice counts per (goal, state) by Metropolis-Hastings, and records the posterior of the
// utility weights (w_inf, w_soc, w_pres) and the projected phi_S1 per goal, of alpha and of the negation
// cost c, with the posterior predictive fit.
//
// Input: a counts table (CSV with columns goal, state, utterance, count; goal in informative / social /
// both, state 0..3, utterance as in kUtteranceNames; absent rows count 0; counts may be fractional, e.g.
// a language model's choice probabilities times a number of pseudo-observations) and the literal
// semantics (CSV with columns utterance, state, mean: m_u(s), the mean of the paper's Beta per cell).
// Relative paths are resolved against the working directory of the `assay` process.
//
// The data do not depend on the run's model, so the fit runs once, at the first on_eval or on_end
// (whichever comes first); later calls do nothing. A run of one step with any small task and model is
// the carrier (recipes/papers/polite-speech/human_data.toml; a run of 0 steps runs no analyzer).
//
// With source = "model" the counts are the run's model's choices instead, read at every on_eval (a fit per
// checkpoint): on a multiple-choice task (assay/multiple_choice.hpp, e.g. choice_counts) whose questions are
// named "<goal>/<state>" and whose options are named as the utterances, counts = the model's option
// distribution at the answer slot times pseudo_count (the number of choices it stands for per scenario).
// Scenarios the task lacks count 0 (their goal's parameters then follow the prior).
#include <assay/assay.hpp>

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "rsa_polite_model.hpp"

namespace {

using namespace rsa_polite;

std::string where(const std::string& path) {
  if (!path.empty() && path.front() == '/') return "";
  std::vector<char> cwd(4096);
  return " (a relative path, resolved against the working directory '" +
         std::string(getcwd(cwd.data(), cwd.size()) ? cwd.data() : "?") + "')";
}

std::string trim(std::string s) {
  auto blank = [](unsigned char c) { return std::isspace(c) || c == '"'; };
  while (!s.empty() && blank(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && blank(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

/// Rows of a CSV file as maps from the header's column names to fields; `required` columns must exist.
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path, const std::vector<std::string>& required,
                                                         const std::string& option) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("rsa_polite: cannot read " + option + " = '" + path + "'" + where(path) + ": " +
                                std::strerror(errno));
  }
  auto split = [](const std::string& line) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, ',')) fields.push_back(trim(field));
    return fields;
  };
  std::string line;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    if (!trim(line).empty()) header = split(line);
  }
  for (const auto& column : required) {
    if (std::find(header.begin(), header.end(), column) == header.end()) {
      throw std::invalid_argument("rsa_polite: " + option + " = '" + path + "' has no column '" + column + "'");
    }
  }
  std::vector<std::map<std::string, std::string>> rows;
  int line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    auto fields = split(line);
    if (fields.size() != header.size()) {
      throw std::invalid_argument("rsa_polite: " + path + ":" + std::to_string(line_number) + ": " +
                                  std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
    }
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size(); ++i) row[header[i]] = fields[i];
    row["#line"] = path + ":" + std::to_string(line_number);
    rows.push_back(std::move(row));
  }
  return rows;
}

int index_of(const std::string& value, const auto& names, const std::string& what, const std::string& at) {
  auto it = std::find(names.begin(), names.end(), value);
  if (it == names.end()) {
    std::string valid;
    for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + std::string(n);
    throw std::invalid_argument("rsa_polite: " + at + ": unknown " + what + " '" + value + "' (valid: " + valid + ")");
  }
  return static_cast<int>(it - names.begin());
}

double number(const std::string& text, const std::string& at) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(value)) {
    throw std::invalid_argument("rsa_polite: " + at + ": '" + text + "' is not a finite number");
  }
  return value;
}

int state_of(const std::string& text, const std::string& at) {
  const double s = number(text, at);
  if (s != std::floor(s) || s < 0 || s >= kStates) {
    throw std::invalid_argument("rsa_polite: " + at + ": state must be 0..3, got '" + text + "'");
  }
  return static_cast<int>(s);
}

/// The literal semantics: the mean m_u(s) of every cell and, when `with_beta`, its Beta(a, b) prior.
Semantics read_semantics(const std::string& path, SemanticsPrior* beta) {
  Semantics m;
  std::array<std::array<bool, kStates>, kUtterances> seen{};
  std::vector<std::string> columns = {"utterance", "state", "mean"};
  if (beta) columns.insert(columns.end(), {"beta_a", "beta_b"});
  for (const auto& row : read_csv(path, columns, "semantics")) {
    const auto& at = row.at("#line");
    const int u = index_of(row.at("utterance"), kUtteranceNames, "utterance", at);
    const int s = state_of(row.at("state"), at);
    if (seen[u][s]) throw std::invalid_argument("rsa_polite: " + at + ": a second row for " + kUtteranceNames[u] + ", state " + std::to_string(s));
    seen[u][s] = true;
    m[u][s] = number(row.at("mean"), at);
    if (beta) {
      beta->a[u][s] = number(row.at("beta_a"), at);
      beta->b[u][s] = number(row.at("beta_b"), at);
      if (beta->a[u][s] <= 0 || beta->b[u][s] <= 0) throw std::invalid_argument("rsa_polite: " + at + ": Beta parameters must be > 0");
      if (m[u][s] <= 0 || m[u][s] >= 1) {
        throw std::invalid_argument("rsa_polite: " + at + ": with semantics_prior = \"beta\" the starting value (mean) must lie in (0, 1)");
      }
    }
  }
  for (int u = 0; u < kUtterances; ++u) {
    for (int s = 0; s < kStates; ++s) {
      if (!seen[u][s]) {
        throw std::invalid_argument("rsa_polite: semantics = '" + path + "' lacks " + kUtteranceNames[u] + " in state " + std::to_string(s));
      }
    }
  }
  literal_listener(m);  // checks every m_u(s) in (0, 1]
  return m;
}

Counts read_counts(const std::string& path) {
  Counts n{};
  std::array<std::array<std::array<bool, kUtterances>, kStates>, kGoals> seen{};
  for (const auto& row : read_csv(path, {"goal", "state", "utterance", "count"}, "counts")) {
    const auto& at = row.at("#line");
    const int g = index_of(row.at("goal"), kGoalNames, "goal", at);
    const int s = state_of(row.at("state"), at);
    const int u = index_of(row.at("utterance"), kUtteranceNames, "utterance", at);
    if (seen[g][s][u]) throw std::invalid_argument("rsa_polite: " + at + ": a second row for this goal, state and utterance");
    seen[g][s][u] = true;
    n[g][s][u] = number(row.at("count"), at);
    if (n[g][s][u] < 0) throw std::invalid_argument("rsa_polite: " + at + ": a negative count");
  }
  return n;
}

struct Summary {
  double mean = 0, lo = 0, hi = 0, map = 0, rhat = NAN;
};

/// Mean, central 95% interval (linear interpolation between order statistics), the value at the draw of
/// highest likelihood, and the Gelman-Rubin potential scale reduction over chains (NaN for one chain).
Summary summarize(const std::vector<std::vector<double>>& chains, double at_map) {
  std::vector<double> all;
  for (const auto& c : chains) all.insert(all.end(), c.begin(), c.end());
  Summary out;
  out.map = at_map;
  for (double v : all) out.mean += v;
  out.mean /= static_cast<double>(all.size());
  std::sort(all.begin(), all.end());
  auto quantile = [&](double q) {
    const double pos = q * static_cast<double>(all.size() - 1);
    const auto i = static_cast<size_t>(std::floor(pos));
    const size_t j = std::min(i + 1, all.size() - 1);
    return all[i] + (pos - static_cast<double>(i)) * (all[j] - all[i]);
  };
  out.lo = quantile(0.025);
  out.hi = quantile(0.975);
  const auto m = static_cast<double>(chains.size()), n = static_cast<double>(chains.front().size());
  if (chains.size() >= 2 && chains.front().size() >= 2) {
    double grand = 0, between = 0, within = 0;
    std::vector<double> means;
    for (const auto& c : chains) {
      double mu = 0;
      for (double v : c) mu += v;
      means.push_back(mu / n);
      grand += mu / n;
    }
    grand /= m;
    for (size_t k = 0; k < chains.size(); ++k) {
      between += (means[k] - grand) * (means[k] - grand);
      double var = 0;
      for (double v : chains[k]) var += (v - means[k]) * (v - means[k]);
      within += var / (n - 1);
    }
    between *= n / (m - 1);
    within /= m;
    out.rhat = within > 0 ? std::sqrt(((n - 1) / n * within + between / n) / within) : NAN;
  }
  return out;
}

class RsaPolite : public assay::Analyzer {
 public:
  struct Options {
    std::string counts = "../shared/papers/human_production_counts.csv";
    std::string semantics = "../shared/papers/literal_semantics.csv";
    std::string semantics_prior = "beta";
    int64_t chains = 4;
    int64_t burn = 2000;
    int64_t samples = 4000;
    bool keep_draws = true;
    std::string source = "counts";
    double pseudo_count = 203;
    std::string split = "test";
    void fields(assay::Fields& f) {
      f("source", source, "counts: the counts table; model: the run's model's choice distributions at every eval")
          .choices({"counts", "model"});
      f("pseudo_count", pseudo_count, "source = model: choices per scenario a model's distribution stands for (the human "
        "data has 203)").min(1e-9);
      f("split", split, "source = model: the eval split whose choice questions are the scenarios");
      f("counts", counts,
        "CSV of utterance choices: goal,state,utterance,count (relative to the working directory; the default is "
        "the human data of Yoon et al. 2020 beside the repository)");
      f("semantics", semantics, "CSV of the literal semantics: utterance,state,mean and, for semantics_prior = beta, beta_a,beta_b "
        "(relative to the working directory)");
      f("semantics_prior", semantics_prior,
        "beta: infer each m_u(s) under its Beta(beta_a, beta_b) prior, as the original does; mean: fix m_u(s) at the "
        "mean column (the summary's simplification; about 10x faster)")
          .choices({"beta", "mean"});
      f("chains", chains, "independent MH chains, each from a draw of the prior (run in parallel)").range(1, 64);
      f("burn", burn, "MH sweeps discarded per chain (the likelihood is annealed and step sizes adapt during these)").min(0);
      f("samples", samples, "MH sweeps kept per chain").min(2);
      f("keep_draws", keep_draws, "store every kept draw as /analyzers/rsa_polite/draws");
    }
  };

  RsaPolite(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), recorder_(*context.recorder) {
    // Read the tables and check the task now, so that a bad path or task fails the run before any training.
    semantics_ = read_semantics(options.semantics, options.semantics_prior == "beta" ? &prior_ : nullptr);
    if (options.source == "model") {
      choices_ = &assay::multiple_choice_task(context, "rsa_polite with source = \"model\"");
      model_ = context.model;
      map_choices();
    } else {
      counts_ = read_counts(options.counts);
      warn_missing_goals();
    }
    recorder_.describe("observed", "axes", "[goal, state, utterance]: observed proportions (NaN where a scenario has no counts)");
    recorder_.describe("predictive", "axes", "[goal, state, utterance]: posterior predictive S2(u | s, goal)");
    recorder_.describe("observed", "goals", "informative, social, both");
    recorder_.describe("semantics", "axes", "[utterance, state]: posterior mean of the literal semantics m_u(s)");
    recorder_.describe("predictive", "goals", "informative, social, both");
    std::string utterances;
    for (const auto& u : kUtteranceNames) utterances += (utterances.empty() ? "" : ", ") + u;
    recorder_.describe("observed", "utterances", utterances);
    recorder_.describe("predictive", "utterances", utterances);
    recorder_.describe("semantics", "utterances", utterances);
    if (options.keep_draws) {
      recorder_.describe("draws", "columns",
                         "chain, log_likelihood, alpha, cost, then per goal (informative, social, both): w_inf, w_soc, w_pres, phi");
    }
  }

  void on_eval(int64_t step) override {
    if (choices_) read_model();
    fit(step);
  }
  void on_end(int64_t step) override {
    if (choices_ && fitted_step_ != step) read_model();
    fit(step);
  }

 private:
  /// Scenario (goal, state) and utterance of each of the task's questions and options.
  void map_choices() {
    const auto format = choices_->choice_format();
    for (const auto& name : format.option_names) {
      option_utterance_.push_back(index_of(name, kUtteranceNames, "utterance", "the task's option '" + name + "'"));
    }
    const auto questions = choices_->choice_questions(options_.split, assay::Perturbation::none);
    for (const auto& name : questions.names) {
      const auto slash = name.find('/');
      const std::string at = "the task's question '" + name + "' (expected <goal>/<state>)";
      if (slash == std::string::npos) throw std::invalid_argument("rsa_polite: " + at + " has no '/'");
      question_scenario_.push_back({index_of(name.substr(0, slash), kGoalNames, "goal", at), state_of(name.substr(slash + 1), at)});
    }
  }

  /// counts_ from the model's option distributions: p * pseudo_count per scenario.
  void read_model() {
    const auto questions = choices_->choice_questions(options_.split, assay::Perturbation::none);
    const auto answers = assay::answer_choices(*model_, *choices_, questions);
    counts_ = {};
    auto p = answers.probabilities.contiguous();
    for (size_t q = 0; q < question_scenario_.size(); ++q) {
      const auto [g, s] = question_scenario_[q];
      for (size_t o = 0; o < option_utterance_.size(); ++o) {
        counts_[g][s][option_utterance_[o]] += p[static_cast<int64_t>(q)][static_cast<int64_t>(o)].item<double>() * options_.pseudo_count;
      }
    }
    if (!warned_) warn_missing_goals();
    warned_ = true;
    done_ = false;  // a new fit for every checkpoint
  }

  void warn_missing_goals() {
    for (int g = 0; g < kGoals; ++g) {
      double total = 0;
      for (const auto& row : counts_[g]) for (double c : row) total += c;
      if (total == 0) assay::log::warn("rsa_polite: no counts for goal '", kGoalNames[g], "': its parameters follow the prior");
    }
  }

  void fit(int64_t step) {
    if (done_) return;
    done_ = true;
    fitted_step_ = step;
    std::vector<ChainResult> chains(static_cast<size_t>(options_.chains));
    std::vector<std::exception_ptr> errors(chains.size());
    std::vector<std::thread> threads;
    for (size_t c = 0; c < chains.size(); ++c) {
      threads.emplace_back([&, c] {
        try {
          const SemanticsPrior* prior = options_.semantics_prior == "beta" ? &prior_ : nullptr;
          chains[c] = sample_chain(semantics_, counts_, {options_.burn, options_.samples, seed_, c, prior});
        } catch (...) {
          errors[c] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }

    // The draw of highest likelihood: with mean semantics (flat priors on a box) also the highest
    // posterior density among the draws; with Beta semantics their prior is not counted.
    const Draw* best = &chains.front().draws.front();
    for (const auto& c : chains) {
      for (const auto& d : c.draws) {
        if (d.log_likelihood > best->log_likelihood) best = &d;
      }
    }
    auto record = [&](const std::string& name, auto get) {
      std::vector<std::vector<double>> values;
      for (const auto& c : chains) {
        values.emplace_back();
        for (const auto& d : c.draws) values.back().push_back(get(d));
      }
      const Summary s = summarize(values, get(*best));
      recorder_.metric("rsa." + name + ".mean", step, s.mean);
      recorder_.metric("rsa." + name + ".lo", step, s.lo);
      recorder_.metric("rsa." + name + ".hi", step, s.hi);
      recorder_.metric("rsa." + name + ".map", step, s.map);
      if (!std::isnan(s.rhat)) recorder_.metric("rsa." + name + ".rhat", step, s.rhat);
      return s;
    };
    std::ostringstream report;
    report.precision(3);
    auto line = [&](const std::string& name, const Summary& s) {
      report << "\n  " << name << " = " << s.mean << " [" << s.lo << ", " << s.hi << "] map " << s.map;
      if (!std::isnan(s.rhat)) report << " rhat " << s.rhat;
    };
    line("alpha", record("alpha", [](const Draw& d) { return d.alpha; }));
    line("cost", record("cost", [](const Draw& d) { return d.cost; }));
    for (int g = 0; g < kGoals; ++g) {
      const std::string goal = kGoalNames[g];
      line(goal + ".w_inf", record(goal + ".w_inf", [g](const Draw& d) { return d.weights[g].inf; }));
      line(goal + ".w_soc", record(goal + ".w_soc", [g](const Draw& d) { return d.weights[g].soc; }));
      line(goal + ".w_pres", record(goal + ".w_pres", [g](const Draw& d) { return d.weights[g].pres; }));
      line(goal + ".phi", record(goal + ".phi", [g](const Draw& d) { return phi_of(d.phi_bin[g]); }));
    }

    // Posterior predictive: S2 averaged over (at most 1000 evenly spaced) draws of every chain.
    Counts predictive{};
    int64_t used = 0;
    for (const auto& c : chains) {
      const size_t stride = std::max<size_t>(1, c.draws.size() / 1000);
      for (size_t i = 0; i < c.draws.size(); i += stride, ++used) {
        const Counts p = predictions(c.draws[i]);
        for (int g = 0; g < kGoals; ++g)
          for (int s = 0; s < kStates; ++s)
            for (int u = 0; u < kUtterances; ++u) predictive[g][s][u] += p[g][s][u];
      }
    }
    auto observed = torch::full({kGoals, kStates, kUtterances}, NAN, torch::kDouble);
    auto predicted = torch::empty({kGoals, kStates, kUtterances}, torch::kDouble);
    std::vector<double> xs, ys;
    double log_likelihood = 0;
    for (int g = 0; g < kGoals; ++g) {
      for (int s = 0; s < kStates; ++s) {
        double total = 0;
        for (double c : counts_[g][s]) total += c;
        for (int u = 0; u < kUtterances; ++u) {
          const double p = predictive[g][s][u] / static_cast<double>(used);
          predicted[g][s][u] = p;
          if (counts_[g][s][u] > 0) log_likelihood += counts_[g][s][u] * std::log(p);
          if (total > 0) {
            observed[g][s][u] = counts_[g][s][u] / total;
            xs.push_back(p);
            ys.push_back(counts_[g][s][u] / total);
          }
        }
      }
    }
    // r^2 over the scenarios with data (96 cells for complete data), as the paper reports.
    const auto n = static_cast<double>(xs.size());
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < xs.size(); ++i) mx += xs[i] / n, my += ys[i] / n;
    for (size_t i = 0; i < xs.size(); ++i) {
      sxy += (xs[i] - mx) * (ys[i] - my);
      sxx += (xs[i] - mx) * (xs[i] - mx);
      syy += (ys[i] - my) * (ys[i] - my);
    }
    const double r2 = sxx > 0 && syy > 0 ? sxy * sxy / (sxx * syy) : NAN;
    double acceptance = 0;
    for (const auto& c : chains) acceptance += c.acceptance / static_cast<double>(chains.size());
    recorder_.metric("rsa.fit.r2", step, r2);
    recorder_.metric("rsa.fit.log_likelihood", step, log_likelihood);
    recorder_.metric("rsa.fit.map_log_likelihood", step, best->log_likelihood);
    recorder_.metric("rsa.mh.acceptance", step, acceptance);
    auto semantics = torch::zeros({kUtterances, kStates}, torch::kDouble);
    auto* mean = semantics.data_ptr<double>();
    double draws = 0;
    for (const auto& c : chains) {
      for (const auto& d : c.draws) {
        for (int u = 0; u < kUtterances; ++u)
          for (int s = 0; s < kStates; ++s) mean[u * kStates + s] += d.semantics[u][s];
        draws += 1;
      }
    }
    recorder_.append("semantics", step, semantics / draws);
    recorder_.append("observed", step, observed);
    recorder_.append("predictive", step, predicted);
    if (options_.keep_draws) {
      const int64_t columns = 4 + 4 * kGoals;
      auto draws = torch::empty({options_.chains * options_.samples, columns}, torch::kDouble);
      auto* out = draws.data_ptr<double>();
      for (size_t c = 0; c < chains.size(); ++c) {
        for (const auto& d : chains[c].draws) {
          *out++ = static_cast<double>(c);
          *out++ = d.log_likelihood;
          *out++ = d.alpha;
          *out++ = d.cost;
          for (int g = 0; g < kGoals; ++g) {
            *out++ = d.weights[g].inf;
            *out++ = d.weights[g].soc;
            *out++ = d.weights[g].pres;
            *out++ = phi_of(d.phi_bin[g]);
          }
        }
      }
      recorder_.append("draws", step, draws);
    }
    assay::log::info("rsa_polite: ", options_.chains, " chains x ", options_.samples, " draws (acceptance ", acceptance,
                     "), r^2 = ", r2, report.str());
  }

  Options options_;
  uint64_t seed_;
  assay::Recorder& recorder_;
  Semantics semantics_{};
  SemanticsPrior prior_{};
  Counts counts_{};
  bool done_ = false;
  int64_t fitted_step_ = -1;
  // source = model:
  assay::MultipleChoice* choices_ = nullptr;
  assay::Model* model_ = nullptr;
  std::vector<int> option_utterance_;                 // per option of the task
  std::vector<std::pair<int, int>> question_scenario_;  // (goal, state) per question of the task
  bool warned_ = false;
};

}  // namespace

ASSAY_PLUGIN("rsa_polite", "0.1.0") {
  plugin.add<RsaPolite>("rsa_polite",
                        "polite-speech RSA model (Yoon et al. 2020) fitted by MH to utterance counts: utility weights, phi, alpha, cost");
}
