#pragma once
// Shared helpers for the unit tests (core/src/*_test.cpp and plugins/*/*/*_test.cpp).
#include <assay/components.hpp>
#include <assay/multiple_choice.hpp>

#include "registry.hpp"

#include <torch/utils.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace assay::testing {

/// The registry of the build tree's plugins (loaded once per test process).
const Registry& plugins();

/// A fresh empty directory, removed at exit.
std::filesystem::path temp_dir(const std::string& name);

/// Writes `text` to `path` (creating directories) and returns the path.
std::string write_file(const std::filesystem::path& path, const std::string& text);

/// Runs a shell command; returns its exit code and puts stdout+stderr into *output.
int shell(const std::string& command, std::string* output = nullptr);

/// Resolved values of component `name` with `overrides` on top of its defaults.
Values values_of(Kind kind, const std::string& name, const Values& overrides = {});

/// A Recorder that keeps everything in memory.
class MemoryRecorder : public Recorder {
 public:
  void metric(std::string_view name, int64_t step, double value) override {
    metrics[std::string(name)].emplace_back(step, value);
  }
  void append(std::string_view name, int64_t step, const at::Tensor& row) override {
    rows[std::string(name)].emplace_back(step, row.clone());
  }
  void describe(std::string_view, std::string_view, std::string_view) override {}
  void event(int64_t step, std::string_view kind, std::string_view message) override {
    events.push_back({step, std::string(kind), std::string(message)});
  }
  double last(const std::string& name) const { return metrics.at(name).back().second; }

  std::map<std::string, std::vector<std::pair<int64_t, double>>> metrics;
  std::map<std::string, std::vector<std::pair<int64_t, at::Tensor>>> rows;
  struct Event { int64_t step; std::string kind, message; };
  std::vector<Event> events;
};

/// A tiny gpt (width 16, 2 heads, `layers` blocks, torch seed 0) on a `TaskT`, wired into `context` with a
/// MemoryRecorder (context.seed = `seed`): for algorithm tests that need a real model.
template <class TaskT>
struct TinyGptOn {
  MemoryRecorder recorder;
  Context context;
  TaskT task;
  std::shared_ptr<Model> model;

  explicit TinyGptOn(int64_t layers, uint64_t seed) {
    context.seed = seed;
    context.recorder = &recorder;
    context.task = &task;
    context.task_shape = task.shape();
    torch::manual_seed(0);
    model = plugins().create<Model>(
        "gpt", values_of(Kind::model, "gpt", {{"layers", layers}, {"width", int64_t{16}}, {"heads", int64_t{2}}}), context);
    context.model = model.get();
  }
  /// Algorithm `name` with `overrides` in this context.
  std::shared_ptr<Algorithm> algorithm(const std::string& name, const Values& overrides) {
    return plugins().create<Algorithm>(name, values_of(Kind::algorithm, name, overrides), context);
  }
};

}  // namespace assay::testing

namespace assay::testing {

/// A small model built through the registry: quadratic_mlp of `width` for a task of `p` tokens.
std::shared_ptr<Model> small_model(int64_t p, int64_t width, uint64_t seed = 0);

/// Runs optimizer `name` for `steps` steps on small_model's parameters with seeded random gradients and
/// a varying learning-rate factor, then replays the same in Python with `python_optimizer` (an
/// expression over `groups`, e.g. "torch.optim.AdamW(groups, lr=0.01)") and returns the largest
/// absolute difference of the final parameters.
/// `group_overrides`: per model parameter group (quadratic_mlp: "embedding", "head"), option values as
/// from [optimizer.groups.<group>]. In Python, `groups[i]` are the dicts {"params": [...]} in that order.
double max_difference_from_python(const std::string& name, const Values& overrides, const std::string& python_optimizer,
                                  int steps, const std::map<std::string, Values>& group_overrides = {});

/// Saves the optimizer after `before` steps, runs `after` more; a fresh optimizer loaded from the save
/// must produce bit-identical parameters. Returns true when it does.
bool continues_identically_after_load(const std::string& name, const Values& overrides, int before, int after);

/// Optimizer `name` with `overrides` on its defaults and per-group overrides, for `model`.
std::shared_ptr<Optimizer> make_optimizer(const std::string& name, const Values& overrides, Model& model,
                                          const std::map<std::string, Values>& group_overrides = {});

/// The LR factor the trajectory helpers apply at `step`: 1 / (1 + step / 4).
double factor_of(int step);

// A "model" that is only parameters of chosen shapes, in named groups (for shapes quadratic_mlp lacks:
// 1-D, 3-D and 4-D tensors, square matrices).
using Layout = std::vector<std::pair<std::string, std::vector<int64_t>>>;  // (group, shape) per parameter

class Shapes : public Model {
 public:
  explicit Shapes(const Layout& layout) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(42);
    for (size_t i = 0; i < layout.size(); ++i) {
      const auto& [group, shape] = layout[i];
      std::string name = "p";
      name += std::to_string(i);
      auto p = register_parameter(name, torch::randn(shape, generator) * 0.5);
      if (groups_.empty() || groups_.back().name != group) groups_.push_back({group, {}});
      groups_.back().params.push_back(p);
    }
  }
  at::Tensor forward(const at::Tensor&) override { throw std::logic_error("Shapes has no forward"); }
  std::vector<ParamGroup> param_groups() override { return groups_; }

 private:
  std::vector<ParamGroup> groups_;
};

struct Comparison {
  double difference = 0;  // max |C++ - float64 reference| over the final parameters
  double movement = 0;    // max |final - initial|: how far the parameters travelled
};

/// Like max_difference_from_python, on a Shapes model: `steps` steps with seeded random normal gradients
/// (parameter i gets none at step s when skip > 0 and (s + i) % skip == skip - 1) and the LR factor
/// factor_of(step), then the same in Python with `python_optimizer` (a float64 reference may define
/// `max_difference(final)` to compare against its float64 masters).
Comparison compare_with_python(const std::string& name, const Values& overrides, const std::string& python_optimizer,
                               const Layout& layout, int steps, int skip = 0,
                               const std::map<std::string, Values>& group_overrides = {});

/// Runs optimizer `name` on small_model(7, 6) for `steps` steps of seeded random gradients with a
/// varying LR factor, then replays them with `script` (a float64 reference program, run as
/// `python3 script trajectory.pt config.json`); returns the largest |difference| of the final parameters.
/// *movement: largest |final - initial|. `reference_overrides`: options changed for the replay only.
double max_difference_from_float64(const std::string& name, const Values& overrides, int steps,
                                   const std::map<std::string, Values>& group_overrides, const std::string& script,
                                   double* movement = nullptr, const Values& reference_overrides = {});

// A one-step bandit for RL algorithm tests: the prompt is one token, the completion one action of 5;
// action `best` pays 1, the others 0.
class Bandit : public Task {
 public:
  explicit Bandit(int64_t best = 3) : best_(best) {}
  TaskShape shape() const override { return {5, 5, 2}; }
  Batch train_batch(int64_t) override { throw std::logic_error("bandit: RL only"); }
  std::vector<std::string> eval_splits() const override { return {}; }
  Batch eval_batch(std::string_view) override { throw std::logic_error("bandit: no eval"); }
  PromptBatch train_prompts(int64_t, int64_t count) override {
    return {at::zeros({count, 1}, at::kLong), at::ones({count}, at::kLong)};
  }
  Verdict score(const std::vector<int64_t>&, const std::vector<int64_t>& completion) override {
    const bool right = !completion.empty() && completion[0] == best_;
    return {right ? 1.0 : 0.0, right};
  }
  CompletionFormat completion_format() const override { return {{}, 0, 1}; }

 private:
  int64_t best_;
};

// A context-free policy over 5 tokens: the same logits theta at every position.
class BanditPolicy : public Model {
 public:
  BanditPolicy() { theta = register_parameter("theta", at::zeros({5})); }
  at::Tensor forward(const at::Tensor& inputs) override { return theta.expand({inputs.size(0), inputs.size(1), 5}); }
  at::Tensor forward_with(const at::Tensor& inputs, const ForwardArgs&) override { return forward(inputs); }
  at::Tensor theta;
};

// A verifiable task for analyzer tests: eval split "test" of `problems` problems; problem j's prompt is the
// token j % 5 and the right answer is that token again.
class EchoTask : public Task {
 public:
  explicit EchoTask(int64_t problems = 500) : problems_(problems) {}
  TaskShape shape() const override { return {5, 5, 2}; }
  Batch train_batch(int64_t) override { throw std::logic_error("echo: unused"); }
  std::vector<std::string> eval_splits() const override { return {"test"}; }
  Batch eval_batch(std::string_view) override { throw std::logic_error("echo: unused"); }
  PromptBatch eval_prompts(std::string_view) override {
    return {(at::arange(problems_, at::kLong) % 5).unsqueeze(1), at::ones({problems_}, at::kLong)};
  }
  Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const bool right = completion.size() == 1 && completion[0] == prompt.at(0);
    return {right ? 1.0 : 0.0, right};
  }
  CompletionFormat completion_format() const override { return {{}, 0, 1}; }

 private:
  int64_t problems_;
};

// A policy over 5 tokens that ignores its input: token t with probability probs[t] at temperature 1.
class FixedPolicy : public Model {
 public:
  explicit FixedPolicy(const std::vector<double>& probs) {
    logits = register_parameter("logits", at::tensor(probs, at::kFloat).log());
  }
  at::Tensor forward(const at::Tensor& inputs) override { return logits.expand({inputs.size(0), inputs.size(1), 5}); }
  at::Tensor forward_with(const at::Tensor& inputs, const ForwardArgs&) override { return forward(inputs); }
  at::Tensor logits;
};

// A bigram model over `table` [V, V]: the logits at a position are row `token` of the table, so every answer
// read from it has a closed form.
class BigramModel : public Model {
 public:
  explicit BigramModel(at::Tensor table) : table(std::move(table)) {}
  at::Tensor forward(const at::Tensor& inputs) override {
    return table.index_select(0, inputs.flatten()).view({inputs.size(0), inputs.size(1), -1});
  }
  at::Tensor forward_with(const at::Tensor& inputs, const ForwardArgs&) override { return forward(inputs); }
  at::Tensor table;
};

// A multiple-choice task over 10 tokens for analyzer tests. Options are the tokens 2, 3, 4; the marker is 7,
// EoS 8. Split "test" holds `prompts` with `correct` options. A misleading hint appends token 5 and a wrong
// reasoning the tokens 6 and the marker, both pointing to `misleading`. With `reasoning`, clean and hinted
// prompts stop before the answer slot, and a reasoning implies option (its last token - 5) when that is 0..2.
class ChoiceStub : public Task, public MultipleChoice {
 public:
  static constexpr int64_t kVocab = 10, kHint = 5, kWrongStep = 6, kMarker = 7, kEos = 8;
  std::vector<std::vector<int64_t>> prompts = {{0, 1, 9}, {1}};
  std::vector<int64_t> correct = {0, 2}, misleading = {1, 0};
  bool reasoning = false;
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> implied_calls;  // (prompt, reasoning) seen

  TaskShape shape() const override { return {kVocab, kVocab, 8}; }
  Batch train_batch(int64_t) override { throw std::logic_error("choice stub: unused"); }
  std::vector<std::string> eval_splits() const override { return {"test"}; }
  Batch eval_batch(std::string_view) override { throw std::logic_error("choice stub: unused"); }
  ChoiceFormat choice_format() const override { return {{2, 3, 4}, {"a", "b", "c"}, reasoning ? kMarker : -1, {kEos}, reasoning ? 3 : 0}; }
  ChoiceQuestions choice_questions(std::string_view, Perturbation perturbation) override {
    if (perturbation == Perturbation::wrong_reasoning && !reasoning) throw std::invalid_argument("choice stub: no reasoning");
    std::vector<std::vector<int64_t>> rows = prompts;
    for (auto& r : rows) {
      if (perturbation == Perturbation::misleading_hint) r.push_back(kHint);
      if (perturbation == Perturbation::wrong_reasoning) r.insert(r.end(), {kWrongStep, kMarker});
    }
    size_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.size());
    ChoiceQuestions q;
    q.prompts = {at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)}, at::kLong),
                 at::empty({static_cast<int64_t>(rows.size())}, at::kLong)};
    for (size_t i = 0; i < rows.size(); ++i) {
      for (size_t j = 0; j < rows[i].size(); ++j) q.prompts.tokens[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
      q.prompts.lengths[static_cast<int64_t>(i)] = static_cast<int64_t>(rows[i].size());
      q.names.push_back("q" + std::to_string(i));
    }
    q.at_answer_slot = !reasoning || perturbation == Perturbation::wrong_reasoning;
    q.correct = at::tensor(correct, at::kLong);
    q.misleading = perturbation == Perturbation::none ? at::full({static_cast<int64_t>(rows.size())}, -1, at::kLong)
                                                      : at::tensor(misleading, at::kLong);
    return q;
  }
  int64_t implied_option(const std::vector<int64_t>& prompt, const std::vector<int64_t>& reasoning_tokens) override {
    implied_calls.push_back({prompt, reasoning_tokens});
    if (reasoning_tokens.empty()) return -1;
    const int64_t o = reasoning_tokens.back() - 5;
    return o >= 0 && o < 3 ? o : -1;
  }
};

/// Trains `policy` on `task` with RL algorithm `name` (overrides on its defaults) by plain gradient descent
/// (lr 0.5) for `steps` steps; returns the last step's "reward" metric.
double train_bandit(const std::string& name, const Values& overrides, Bandit& task, BanditPolicy& policy, int steps);

}  // namespace assay::testing
