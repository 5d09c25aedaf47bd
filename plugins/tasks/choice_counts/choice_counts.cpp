// A language of choices made in scenarios, learnt from a counts table: a model sees a scenario and names an
// option, with the options' frequencies in the table, e.g. the polite-speech production data
// (../shared/papers/human_production_counts.csv: goal, state, utterance, count). What a model learns is read
// back as its choice distribution per scenario (assay/multiple_choice.hpp), e.g. by rsa_polite with
// source = "model", which fits the RSA speaker to the model as it trains.
//
// A scenario is the tuple of its question_columns' values; the options are the option_column's values.
// Vocabulary: "SoS", one token per (question column, value) written "column=value", one per option value,
// "EoS", "PAD". Example: prompt "SoS goal=social state=2", answer "not_bad EoS". A training example draws a
// scenario uniformly and an option with probability count / (the scenario's total count). Eval split
// "test": eval_size examples drawn the same way (eval_seed), for the validation cross-entropy; its choice
// questions are the scenarios in table order (names "value/value", e.g. "social/2"), with no right option.
#include <assay/assay.hpp>
#include <assay/multiple_choice.hpp>
#include <assay/sequences.hpp>

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace {

constexpr uint64_t kEvalStream = 0xc0c0;

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, ',')) {
    const auto first = field.find_first_not_of(" \t\r\""), last = field.find_last_not_of(" \t\r\"");
    fields.push_back(first == std::string::npos ? "" : field.substr(first, last - first + 1));
  }
  return fields;
}

class ChoiceCounts : public assay::Task, public assay::MultipleChoice {
 public:
  struct Options {
    std::string counts = "../shared/papers/human_production_counts.csv";
    std::vector<std::string> question_columns = {"goal", "state"};
    std::string option_column = "utterance";
    std::string count_column = "count";
    int64_t batch_size = 64;
    int64_t eval_size = 1024;
    int64_t eval_seed = 1234;
    void fields(assay::Fields& f) {
      f("counts", counts, "CSV with a header: the scenario columns, the option column and the count column (relative to "
        "the working directory)");
      f("question_columns", question_columns, "the columns whose values make a scenario");
      f("option_column", option_column, "the column naming the chosen option");
      f("count_column", count_column, "the column with how often the option was chosen (>= 0, may be fractional)");
      f("batch_size", batch_size, "examples per training step").min(1);
      f("eval_size", eval_size, "examples in the test split").min(1);
      f("eval_seed", eval_seed, "seed of the test split (independent of run.seed)").min(0);
    }
  };

  ChoiceCounts(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), device_(context.device) {
    if (options.question_columns.empty()) throw std::invalid_argument("choice_counts: question_columns must name at least one column");
    read(options.counts);
    std::vector<std::string> symbols = {"SoS"};
    for (size_t c = 0; c < options.question_columns.size(); ++c) {
      for (const auto& v : column_values_[c]) symbols.push_back(options.question_columns[c] + "=" + v);
    }
    for (const auto& o : option_names_) symbols.push_back(o);
    for (const char* s : {"EoS", "PAD"}) symbols.emplace_back(s);
    vocab_ = std::make_unique<assay::Vocabulary>(symbols);  // throws on a clash, e.g. an option named "EoS"
    eos_ = vocab_->id("EoS");
    pad_ = vocab_->id("PAD");
    for (const auto& o : option_names_) option_tokens_.push_back(vocab_->id(o));
    assay::SplitMix64 rng(static_cast<uint64_t>(options.eval_seed), kEvalStream);
    test_ = assay::pack_examples(examples(rng, options.eval_size), pad_, length(), device_);
  }

  assay::TaskShape shape() const override { return {vocab_->size(), vocab_->size(), length()}; }

  assay::Batch train_batch(int64_t step) override {
    assay::SplitMix64 rng(seed_, static_cast<uint64_t>(step));
    return assay::pack_examples(examples(rng, options_.batch_size), pad_, length(), device_);
  }

  std::vector<std::string> eval_splits() const override { return {"test"}; }

  assay::Batch eval_batch(std::string_view split) override {
    check_split(split);
    return test_;
  }

  assay::ChoiceFormat choice_format() const override {
    assay::ChoiceFormat f;
    f.option_tokens = option_tokens_;
    f.option_names = option_names_;
    f.stop_tokens = {eos_};
    return f;
  }

  assay::ChoiceQuestions choice_questions(std::string_view split, assay::Perturbation perturbation) override {
    check_split(split);
    if (perturbation != assay::Perturbation::none) {
      throw std::invalid_argument("choice_counts: its questions have no right option, so they cannot be perturbed toward a wrong one");
    }
    std::vector<assay::SequenceExample> prompts;
    assay::ChoiceQuestions q;
    for (const auto& s : scenarios_) {
      prompts.push_back({prompt(s), {eos_}});
      std::string name;
      for (size_t c = 0; c < s.values.size(); ++c) name += (c ? "/" : "") + column_values_[c][static_cast<size_t>(s.values[c])];
      q.names.push_back(name);
    }
    q.prompts = assay::pack_prompts(prompts, pad_, device_);
    q.at_answer_slot = true;
    q.correct = torch::full({static_cast<int64_t>(scenarios_.size())}, -1, torch::kLong);
    q.misleading = q.correct.clone();
    return q;
  }

 private:
  struct Scenario {
    std::vector<int64_t> values;  // index into column_values_ per question column
    std::vector<double> counts;   // per option
  };

  void check_split(std::string_view split) const {
    if (split != "test") throw std::invalid_argument("choice_counts has no eval split '" + std::string(split) + "' (it has: test)");
  }

  int64_t length() const { return static_cast<int64_t>(options_.question_columns.size()) + 2; }  // SoS q.. option EoS, less one

  std::vector<int64_t> prompt(const Scenario& s) const {
    std::vector<int64_t> p = {vocab_->id("SoS")};
    for (size_t c = 0; c < s.values.size(); ++c) {
      p.push_back(vocab_->id(options_.question_columns[c] + "=" + column_values_[c][static_cast<size_t>(s.values[c])]));
    }
    return p;
  }

  std::vector<assay::SequenceExample> examples(assay::SplitMix64& rng, int64_t count) const {
    std::vector<assay::SequenceExample> out;
    for (int64_t i = 0; i < count; ++i) {
      const auto& s = scenarios_[static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(scenarios_.size()) - 1))];
      double total = 0;
      for (double c : s.counts) total += c;
      double u = rng.uniform01() * total;
      size_t o = 0;
      while (o + 1 < s.counts.size() && u >= s.counts[o]) u -= s.counts[o++];
      while (s.counts[o] == 0) --o;  // rounding ran past the last chosen option (the total is > 0)
      out.push_back({prompt(s), {option_tokens_[o], eos_}});
    }
    return out;
  }

  void read(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
      std::vector<char> cwd(4096);
      throw std::invalid_argument("choice_counts: cannot read counts = '" + path + "'" +
                                  (path.starts_with("/") ? "" : " (relative to the working directory '" +
                                                                    std::string(getcwd(cwd.data(), cwd.size()) ? cwd.data() : "?") + "')") +
                                  ": " + std::strerror(errno));
    }
    std::string line;
    std::vector<std::string> header;
    int line_number = 0;
    while (header.empty() && std::getline(in, line)) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") != std::string::npos) header = split_csv_line(line);
    }
    auto column = [&](const std::string& name, const std::string& key) {
      auto it = std::find(header.begin(), header.end(), name);
      if (it == header.end()) throw std::invalid_argument("choice_counts: " + path + " has no column '" + name + "' (" + key + ")");
      return static_cast<size_t>(it - header.begin());
    };
    std::vector<size_t> question_at;
    for (const auto& c : options_.question_columns) question_at.push_back(column(c, "question_columns"));
    const size_t option_at = column(options_.option_column, "option_column"), count_at = column(options_.count_column, "count_column");
    column_values_.resize(question_at.size());
    std::map<std::vector<int64_t>, size_t> scenario_index;
    struct Row { std::vector<int64_t> scenario; size_t option; double count; };
    std::vector<Row> rows;
    auto index_in = [](std::vector<std::string>& list, const std::string& v) {
      auto it = std::find(list.begin(), list.end(), v);
      if (it != list.end()) return static_cast<size_t>(it - list.begin());
      list.push_back(v);
      return list.size() - 1;
    };
    while (std::getline(in, line)) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string at = path + ":" + std::to_string(line_number);
      auto fields = split_csv_line(line);
      if (fields.size() != header.size()) {
        throw std::invalid_argument("choice_counts: " + at + ": " + std::to_string(fields.size()) + " fields, the header has " +
                                    std::to_string(header.size()));
      }
      Row row;
      for (size_t c = 0; c < question_at.size(); ++c) row.scenario.push_back(static_cast<int64_t>(index_in(column_values_[c], fields[question_at[c]])));
      row.option = index_in(option_names_, fields[option_at]);
      size_t used = 0;
      try {
        row.count = std::stod(fields[count_at], &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != fields[count_at].size() || !std::isfinite(row.count) || row.count < 0) {
        throw std::invalid_argument("choice_counts: " + at + ": count '" + fields[count_at] + "' is not a finite number >= 0");
      }
      if (!scenario_index.count(row.scenario)) {
        scenario_index[row.scenario] = scenarios_.size();
        scenarios_.push_back({row.scenario, {}});
      }
      rows.push_back(row);
    }
    if (rows.empty()) throw std::invalid_argument("choice_counts: " + path + " has no rows");
    for (auto& s : scenarios_) s.counts.assign(option_names_.size(), 0.0);
    for (const auto& r : rows) scenarios_[scenario_index[r.scenario]].counts[r.option] += r.count;
    for (const auto& s : scenarios_) {
      double total = 0;
      for (double c : s.counts) total += c;
      if (total <= 0) {
        std::string name;
        for (size_t c = 0; c < s.values.size(); ++c) name += (c ? "/" : "") + column_values_[c][static_cast<size_t>(s.values[c])];
        throw std::invalid_argument("choice_counts: " + path + ": scenario '" + name + "' has no choices (all counts 0)");
      }
    }
  }

  Options options_;
  uint64_t seed_;
  c10::Device device_;
  std::vector<std::vector<std::string>> column_values_;  // per question column, its values in table order
  std::vector<std::string> option_names_;
  std::vector<Scenario> scenarios_;
  std::unique_ptr<assay::Vocabulary> vocab_;
  std::vector<int64_t> option_tokens_;
  int64_t eos_ = 0, pad_ = 0;
  assay::Batch test_;
};

}  // namespace

ASSAY_PLUGIN("choice_counts", "1.0.0") {
  plugin.add<ChoiceCounts>("choice_counts",
                           "choices in scenarios learnt from a counts table (e.g. polite-speech utterances); multiple choice");
}
