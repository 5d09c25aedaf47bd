// Solution-tree navigation (Qin, Park, Kwun et al. 2025, arXiv 2505.22756, "the RL coverage wall"; generator
// after cfpark00/RL-Wall synthetic/make_data_synthetic_v5.ipynb): a hidden environment of states, actions and
// "problem states". A prompt shows a start state and the problem states a sequence of actions passes
// through; the answer is the plan (the actions, identifiable from consecutive problem states) interleaved
// with its execution (the states the actions lead to).
//
// Hidden tables, fixed by tree_seed (not by the run seed), each from a SplitMix64 stream of its own:
//   T[s][a]   = next state, uniform in [0, num_states);
//   prior[s]  = an action distribution per state ~ Dirichlet(prior_alpha);
//   PT[p][a]  = next problem state: row p is the first num_actions entries of a random permutation of the
//               problem states, so that (p, p') names at most one action;
//   ctx[a]    = a (spurious) context distribution per action ~ Dirichlet(context_alpha).
// A problem: n actions (n uniform in [min_actions, max_actions]), s0 and p0 uniform, s_{i+1} = T[s_i][a_i],
// p_{i+1} = PT[p_i][a_i], one context c_i per action, then num_irrelevant irrelevant numbers r_j, uniform.
//   prompt:  S s0 P p0 C c0 P p1 C c1 ... P pn I r1 ... I rk :
//   answer:  S s0 A a0 S s1 A a1 ... S sn <pad>
// <pad> ends an answer (as in the reference) and pads. SFT data (train_batch, the "train" split) draws a_i
// from prior[s_i] and c_i from ctx[a_i]; RL and test data (train_prompts, "train_rl", "test") draw both
// uniformly, so what training learns through the prior or the contexts fails off its distribution.
//
// Vocabulary: <unk> <bos> <pad> : S P C A I, then the numbers "0".."N-1" (id = 9 + n), N = the largest of
// num_states, num_actions, num_problem_states, num_contexts (29 ids with the defaults; <unk> and <bos> are
// never written). Batches are packed with pack_examples (answer tokens scored; the prompt too with
// loss_on_prompt, training batches only), right-padded to the longest possible example.
//
// Verifiable: train_prompts draws from the fixed train_rl split (rl_prompts = "train_rl", shuffled per
// epoch, as the reference trains GRPO on it) or fresh uniform problems (rl_prompts = "fresh"); score parses
// a prompt, recovers the actions from the problem states and accepts exactly the answer above.
//
// Answer details (assay::AnswerDetails): checks "plan" and "execution", no forms. A completion is read only
// when it is well-formed, "S n (A n S n)* <pad>" with every S number a state and every A number an action;
// then plan = 1 when its actions are the problem's, and execution = 1 when its first state is the prompt's
// s0 and each next state is T[state][its own action] (right given its own plan, right or wrong). Both
// are -1 when the prompt holds no problem or the completion is not well-formed (no plan can be read).
// Both 1 exactly when score says correct.
#include <assay/assay.hpp>
#include <assay/sequences.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <optional>
#include <string>

namespace {

// ---- Gamma and Dirichlet draws on SplitMix64 (portable up to the rounding of std::log and std::exp) ----

/// Standard normal (Marsaglia's polar method).
double normal(assay::SplitMix64& rng) {
  for (;;) {
    const double u = 2 * rng.uniform01() - 1, v = 2 * rng.uniform01() - 1, s = u * u + v * v;
    if (s > 0 && s < 1) return u * std::sqrt(-2 * std::log(s) / s);
  }
}

/// Gamma(alpha, 1) (Marsaglia & Tsang 2000); alpha < 1 through Gamma(alpha + 1) * U^(1/alpha).
double gamma(assay::SplitMix64& rng, double alpha) {
  if (alpha < 1) {
    const double u = 1 - rng.uniform01();  // (0, 1]
    return gamma(rng, alpha + 1) * std::exp(std::log(u) / alpha);
  }
  const double d = alpha - 1.0 / 3, c = 1 / std::sqrt(9 * d);
  for (;;) {
    const double x = normal(rng), t = 1 + c * x;
    if (t <= 0) continue;
    const double v = t * t * t, u = 1 - rng.uniform01();
    if (u < 1 - 0.0331 * x * x * x * x || std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}

/// Dirichlet(alpha, ..., alpha) over n categories (normalized Gamma draws; redrawn in the practically
/// impossible case that all of them underflow to 0).
std::vector<double> dirichlet(assay::SplitMix64& rng, int64_t n, double alpha) {
  std::vector<double> p(static_cast<size_t>(n));
  for (;;) {
    double sum = 0;
    for (auto& x : p) sum += (x = gamma(rng, alpha));
    if (sum > 0) {
      for (auto& x : p) x /= sum;
      return p;
    }
  }
}

/// Index i with probability p[i] (inverse CDF; rounding leftovers go to the last positive entry).
int64_t categorical(assay::SplitMix64& rng, const std::vector<double>& p) {
  const double u = rng.uniform01();
  double cumulative = 0;
  int64_t last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    cumulative += p[i];
    last = static_cast<int64_t>(i);
    if (u < cumulative) return last;
  }
  return last;
}

template <class Row>
std::string json(const std::vector<Row>& table) {
  std::string out = "[";
  for (size_t r = 0; r < table.size(); ++r) {
    out += r ? ",[" : "[";
    for (size_t c = 0; c < table[r].size(); ++c) {
      char buffer[32];
      if constexpr (std::is_floating_point_v<typename Row::value_type>) {
        std::snprintf(buffer, sizeof buffer, "%.12g", table[r][c]);
      } else {
        std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(table[r][c]));
      }
      out.append(c ? "," : "").append(buffer);
    }
    out += "]";
  }
  return out + "]";
}

class SolutionTree : public assay::Task, public assay::AnswerDetails {
 public:
  struct Options {
    int64_t num_states = 20;
    int64_t num_actions = 20;
    int64_t num_problem_states = 20;
    int64_t num_contexts = 20;
    int64_t num_irrelevant = 10;
    int64_t min_actions = 5;
    int64_t max_actions = 10;
    double prior_alpha = 0.3;
    double context_alpha = 0.3;
    int64_t tree_seed = 0;
    int64_t batch_size = 64;
    int64_t train_eval_size = 512;
    int64_t train_rl_size = 128;
    int64_t test_size = 512;
    int64_t eval_seed = 1234;
    bool loss_on_prompt = false;
    std::string rl_prompts = "train_rl";
    void fields(assay::Fields& f) {
      f("num_states", num_states, "states s (T is num_states x num_actions)").range(1, 1000);
      f("num_actions", num_actions, "actions a (at most num_problem_states)").range(1, 1000);
      f("num_problem_states", num_problem_states, "problem states p shown in the prompt").range(1, 1000);
      f("num_contexts", num_contexts, "context values c (one C token per action in the prompt)").range(1, 1000);
      f("num_irrelevant", num_irrelevant, "irrelevant I tokens per prompt, uniform numbers").range(0, 1000);
      f("min_actions", min_actions, "fewest actions of a problem").range(1, 1000);
      f("max_actions", max_actions, "most actions of a problem").range(1, 1000);
      f("prior_alpha", prior_alpha, "Dirichlet concentration of the per-state action prior (SFT actions)").range(1e-3, 1e6);
      f("context_alpha", context_alpha, "Dirichlet concentration of the per-action context table (SFT contexts)").range(1e-3, 1e6);
      f("tree_seed", tree_seed, "seed of the hidden tables (independent of run.seed)").min(0);
      f("batch_size", batch_size, "examples per training step").min(1);
      f("train_eval_size", train_eval_size, "examples in eval split train (the SFT distribution)").min(1);
      f("train_rl_size", train_rl_size, "problems in eval split train_rl (uniform; the RL training set)").min(1);
      f("test_size", test_size, "problems in eval split test (uniform)").min(1);
      f("eval_seed", eval_seed, "seed of the eval sets (independent of run.seed)").min(0);
      f("loss_on_prompt", loss_on_prompt, "training batches also score the prompt tokens (full-sequence LM loss)");
      f("rl_prompts", rl_prompts, "train_prompts: the train_rl problems, shuffled per epoch, or fresh uniform problems")
          .choices({"train_rl", "fresh"});
    }
  };

  SolutionTree(const Options& options, const assay::Context& context)
      : options_(validated(options)),
        seed_(context.seed),
        device_(context.device),
        numbers_(std::max({options.num_states, options.num_actions, options.num_problem_states, options.num_contexts})),
        vocab_(symbols(numbers_)),
        pad_(vocab_.id("<pad>")),
        colon_(vocab_.id(":")),
        S_(vocab_.id("S")),
        P_(vocab_.id("P")),
        C_(vocab_.id("C")),
        A_(vocab_.id("A")),
        I_(vocab_.id("I")) {
    build_tables();
    prompt_max_ = 4 * options_.max_actions + 5 + 2 * options_.num_irrelevant;
    answer_max_ = 4 * options_.max_actions + 3;
    length_ = prompt_max_ + answer_max_ - 1;
    auto split = [&](uint64_t stream, int64_t size, bool sft) {
      assay::SplitMix64 rng(static_cast<uint64_t>(options_.eval_seed), stream);
      std::vector<assay::SequenceExample> examples;
      for (int64_t i = 0; i < size; ++i) examples.push_back(example(problem(rng, sft)));
      return examples;
    };
    const std::pair<std::string, std::vector<assay::SequenceExample>> splits[] = {
        {"train", split(kTrainEvalStream, options_.train_eval_size, true)},
        {"train_rl", split(kTrainRlStream, options_.train_rl_size, false)},
        {"test", split(kTestStream, options_.test_size, false)}};
    for (const auto& [name, examples] : splits) {
      eval_[name] = assay::pack_examples(examples, pad_, length_, device_);
      eval_prompts_[name] = assay::pack_prompts(examples, pad_, device_);
      if (name == "train_rl") train_rl_ = examples;
    }
    if (context.recorder) {  // attributes of /analyzers/<task>/tables: JSON, rows first, 12 digits (HDF5 caps one at 64 KiB)
      const std::pair<const char*, std::string> tables[] = {{"transitions", json(T_)},
                                                            {"action_prior", json(prior_)},
                                                            {"problem_transitions", json(PT_)},
                                                            {"context_given_action", json(context_)}};
      for (const auto& [key, text] : tables) {
        context.recorder->describe("tables", key, text.size() <= 60000 ? text : "omitted: " + std::to_string(text.size()) + " characters");
      }
    }
  }

  assay::TaskShape shape() const override { return {vocab_.size(), vocab_.size(), length_}; }

  assay::Batch train_batch(int64_t step) override {
    assay::SplitMix64 rng(seed_, static_cast<uint64_t>(step));
    std::vector<assay::SequenceExample> examples;
    examples.reserve(static_cast<size_t>(options_.batch_size));
    for (int64_t i = 0; i < options_.batch_size; ++i) examples.push_back(example(problem(rng, true)));
    if (!options_.loss_on_prompt) return assay::pack_examples(examples, pad_, length_, device_);
    auto batch = assay::pack_examples(examples, pad_, length_, c10::kCPU);
    for (size_t r = 0; r < examples.size(); ++r) {  // targets of prompt positions: the next prompt token
      const int64_t n = static_cast<int64_t>(examples[r].prompt.size()) - 1, row = static_cast<int64_t>(r);
      batch.targets[row].narrow(0, 0, n).copy_(batch.inputs[row].narrow(0, 1, n));
    }
    return {batch.inputs.to(device_), batch.targets.to(device_)};
  }

  std::vector<std::string> eval_splits() const override { return {"train", "train_rl", "test"}; }

  assay::Batch eval_batch(std::string_view split) override { return lookup(eval_, split); }

  // rl_prompts = "train_rl": prompt k of step s is number i = s * count + k of an endless sequence of epochs
  // over the train_rl split, each a permutation drawn from (run seed, epoch). "fresh": uniform problems from
  // the stream kPromptStream ^ step; the first m of n prompts are then those of train_prompts(step, m).
  assay::PromptBatch train_prompts(int64_t step, int64_t count) override {
    if (count < 1) throw std::invalid_argument("solution_tree: train_prompts needs count >= 1, got " + std::to_string(count));
    if (step < 0) throw std::invalid_argument("solution_tree: train_prompts needs step >= 0, got " + std::to_string(step));
    std::vector<assay::SequenceExample> examples;
    examples.reserve(static_cast<size_t>(count));
    if (options_.rl_prompts == "fresh") {
      assay::SplitMix64 rng(seed_, kPromptStream ^ static_cast<uint64_t>(step));
      for (int64_t i = 0; i < count; ++i) examples.push_back(example(problem(rng, false)));
    } else {
      const auto M = static_cast<uint64_t>(train_rl_.size());
      uint64_t epoch = ~uint64_t{0};
      std::vector<size_t> order(M);
      for (uint64_t i = static_cast<uint64_t>(step) * static_cast<uint64_t>(count), end = i + static_cast<uint64_t>(count); i < end; ++i) {
        if (i / M != epoch) {
          epoch = i / M;
          std::iota(order.begin(), order.end(), size_t{0});
          assay::SplitMix64 rng(seed_, kEpochStream ^ epoch);
          for (size_t j = order.size(); j > 1; --j) std::swap(order[j - 1], order[static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(j) - 1))]);
        }
        examples.push_back(train_rl_[order[i % M]]);
      }
    }
    return assay::pack_prompts(examples, pad_, device_);
  }

  assay::PromptBatch eval_prompts(std::string_view split) override { return lookup(eval_prompts_, split); }

  assay::Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const auto solution = solve(prompt);
    if (!solution || completion != answer_of(solution->states, solution->actions)) return {0.0, false};
    return {1.0, true};
  }

  std::vector<std::string> answer_checks() const override { return {"plan", "execution"}; }

  assay::AnswerDetail answer_details(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const auto solution = solve(prompt);
    const auto written = read_answer(completion);
    if (!solution || !written) return {-1, {-1, -1}};
    bool executed = written->states[0] == solution->states[0];
    for (size_t i = 0; executed && i < written->actions.size(); ++i) {
      executed = written->states[i + 1] == T_[static_cast<size_t>(written->states[i])][static_cast<size_t>(written->actions[i])];
    }
    return {-1, {static_cast<int8_t>(written->actions == solution->actions), static_cast<int8_t>(executed)}};
  }

  assay::CompletionFormat completion_format() const override { return {{pad_}, pad_, answer_max_}; }

 private:
  // Streams of tree_seed (tables) and eval_seed (splits); kPromptStream and kEpochStream are XORed with the
  // step or epoch: apart from train_batch's streams (the step itself) for every step below 2^56.
  static constexpr uint64_t kTransitionStream = 1, kPriorStream = 2, kProblemStream = 3, kContextStream = 4;
  static constexpr uint64_t kTrainEvalStream = 0x7100000000000000ULL, kTrainRlStream = 0x7200000000000000ULL,
                            kTestStream = 0x7300000000000000ULL;
  static constexpr uint64_t kPromptStream = 0x9700000000000000ULL, kEpochStream = 0x9800000000000000ULL;

  struct Problem {
    std::vector<int64_t> states, problem_states, actions, contexts, irrelevant;
  };

  static Options validated(const Options& o) {
    auto fail = [](const std::string& message) { throw std::invalid_argument("solution_tree: " + message); };
    if (o.min_actions > o.max_actions) {
      fail("min_actions " + std::to_string(o.min_actions) + " > max_actions " + std::to_string(o.max_actions));
    }
    if (!(o.prior_alpha > 0) || !(o.context_alpha > 0) || !std::isfinite(o.prior_alpha) || !std::isfinite(o.context_alpha)) {
      fail("prior_alpha and context_alpha must be positive and finite, got " + std::to_string(o.prior_alpha) + " and " +
           std::to_string(o.context_alpha));
    }
    if (o.rl_prompts != "train_rl" && o.rl_prompts != "fresh") {
      fail("rl_prompts must be \"train_rl\" or \"fresh\", got \"" + o.rl_prompts + "\"");
    }
    if (o.num_actions > o.num_problem_states) {
      fail("num_actions " + std::to_string(o.num_actions) + " > num_problem_states " + std::to_string(o.num_problem_states) +
           ": the actions must be identifiable from consecutive problem states");
    }
    return o;
  }

  static std::vector<std::string> symbols(int64_t numbers) {
    std::vector<std::string> s = {"<unk>", "<bos>", "<pad>", ":", "S", "P", "C", "A", "I"};
    for (int64_t n = 0; n < numbers; ++n) s.push_back(std::to_string(n));
    return s;
  }

  int64_t number(int64_t n) const { return kFirstNumber + n; }
  static constexpr int64_t kFirstNumber = 9;

  void build_tables() {
    const auto& o = options_;
    const auto seed = static_cast<uint64_t>(o.tree_seed);
    assay::SplitMix64 t_rng(seed, kTransitionStream), prior_rng(seed, kPriorStream), pt_rng(seed, kProblemStream),
        c_rng(seed, kContextStream);
    for (int64_t s = 0; s < o.num_states; ++s) {
      T_.emplace_back();
      for (int64_t a = 0; a < o.num_actions; ++a) T_.back().push_back(t_rng.uniform(0, o.num_states - 1));
      prior_.push_back(dirichlet(prior_rng, o.num_actions, o.prior_alpha));
    }
    inverse_.assign(static_cast<size_t>(o.num_problem_states), std::vector<int64_t>(static_cast<size_t>(o.num_problem_states), -1));
    for (int64_t p = 0; p < o.num_problem_states; ++p) {
      std::vector<int64_t> permutation(static_cast<size_t>(o.num_problem_states));
      std::iota(permutation.begin(), permutation.end(), int64_t{0});
      for (size_t j = permutation.size(); j > 1; --j) {
        std::swap(permutation[j - 1], permutation[static_cast<size_t>(pt_rng.uniform(0, static_cast<int64_t>(j) - 1))]);
      }
      permutation.resize(static_cast<size_t>(o.num_actions));
      for (int64_t a = 0; a < o.num_actions; ++a) inverse_[static_cast<size_t>(p)][static_cast<size_t>(permutation[static_cast<size_t>(a)])] = a;
      PT_.push_back(std::move(permutation));
    }
    for (int64_t a = 0; a < o.num_actions; ++a) context_.push_back(dirichlet(c_rng, o.num_contexts, o.context_alpha));
  }

  // One problem: SFT (actions from the prior, contexts from the spurious table) or uniform.
  Problem problem(assay::SplitMix64& rng, bool sft) const {
    const auto& o = options_;
    Problem q;
    const int64_t n = rng.uniform(o.min_actions, o.max_actions);
    q.states.push_back(rng.uniform(0, o.num_states - 1));
    q.problem_states.push_back(rng.uniform(0, o.num_problem_states - 1));
    for (int64_t i = 0; i < n; ++i) {
      const auto s = static_cast<size_t>(q.states.back()), p = static_cast<size_t>(q.problem_states.back());
      const int64_t a = sft ? categorical(rng, prior_[s]) : rng.uniform(0, o.num_actions - 1);
      q.actions.push_back(a);
      q.states.push_back(T_[s][static_cast<size_t>(a)]);
      q.problem_states.push_back(PT_[p][static_cast<size_t>(a)]);
      q.contexts.push_back(sft ? categorical(rng, context_[static_cast<size_t>(a)]) : rng.uniform(0, o.num_contexts - 1));
    }
    for (int64_t j = 0; j < o.num_irrelevant; ++j) q.irrelevant.push_back(rng.uniform(0, numbers_ - 1));
    return q;
  }

  // "S s0 A a0 S s1 ... S sn <pad>".
  std::vector<int64_t> answer_of(const std::vector<int64_t>& states, const std::vector<int64_t>& actions) const {
    std::vector<int64_t> out;
    for (size_t i = 0; i < states.size(); ++i) {
      out.insert(out.end(), {S_, number(states[i])});
      if (i < actions.size()) out.insert(out.end(), {A_, number(actions[i])});
    }
    out.push_back(pad_);
    return out;
  }

  assay::SequenceExample example(const Problem& q) const {
    assay::SequenceExample e;
    e.prompt = {S_, number(q.states[0])};
    for (size_t i = 0; i < q.problem_states.size(); ++i) {
      e.prompt.insert(e.prompt.end(), {P_, number(q.problem_states[i])});
      if (i < q.contexts.size()) e.prompt.insert(e.prompt.end(), {C_, number(q.contexts[i])});
    }
    for (int64_t r : q.irrelevant) e.prompt.insert(e.prompt.end(), {I_, number(r)});
    e.prompt.push_back(colon_);
    e.answer = answer_of(q.states, q.actions);
    return e;
  }

  // States s0..sn and actions a0..a(n-1): a problem's solution, or what a completion writes.
  struct Path {
    std::vector<int64_t> states, actions;
  };

  // The solution of a prompt the task could write: "S s0 P p0 (C c P p)+ (I r){num_irrelevant} :" with every
  // number in its range and every step (p, p') taken by some action (any number of steps >= 1, not only
  // min_actions..max_actions); nothing for anything else.
  std::optional<Path> solve(const std::vector<int64_t>& prompt) const {
    const auto& o = options_;
    size_t at = 0;
    // The number after marker `marker` at `at`, when it lies in [0, limit).
    auto read = [&](int64_t marker, int64_t limit) -> std::optional<int64_t> {
      if (at + 1 >= prompt.size() || prompt[at] != marker) return std::nullopt;
      const int64_t id = prompt[at + 1];
      if (id < kFirstNumber || id - kFirstNumber >= limit) return std::nullopt;
      at += 2;
      return id - kFirstNumber;
    };
    const auto s0 = read(S_, o.num_states);
    auto p = read(P_, o.num_problem_states);
    if (!s0 || !p) return std::nullopt;
    std::vector<int64_t> states{*s0}, actions;
    while (at < prompt.size() && prompt[at] == C_) {
      if (!read(C_, o.num_contexts)) return std::nullopt;
      const auto next = read(P_, o.num_problem_states);
      if (!next) return std::nullopt;
      const int64_t a = inverse_[static_cast<size_t>(*p)][static_cast<size_t>(*next)];
      if (a < 0) return std::nullopt;
      actions.push_back(a);
      states.push_back(T_[static_cast<size_t>(states.back())][static_cast<size_t>(a)]);
      p = next;
    }
    if (actions.empty()) return std::nullopt;
    for (int64_t j = 0; j < o.num_irrelevant; ++j) {
      if (!read(I_, numbers_)) return std::nullopt;
    }
    if (at + 1 != prompt.size() || prompt[at] != colon_) return std::nullopt;
    return Path{states, actions};
  }

  // What a well-formed completion "S s0 (A a S s)* <pad>" writes (numbers in range, nothing after <pad>);
  // nothing for anything else.
  std::optional<Path> read_answer(const std::vector<int64_t>& completion) const {
    auto value = [&](size_t at, int64_t marker, int64_t limit) -> std::optional<int64_t> {
      if (at + 1 >= completion.size() || completion[at] != marker) return std::nullopt;
      const int64_t id = completion[at + 1];
      if (id < kFirstNumber || id - kFirstNumber >= limit) return std::nullopt;
      return id - kFirstNumber;
    };
    Path path;
    size_t at = 0;
    for (;;) {
      const auto state = value(at, S_, options_.num_states);
      if (!state) return std::nullopt;
      path.states.push_back(*state);
      at += 2;
      if (at + 1 == completion.size() && completion[at] == pad_) return path;
      const auto action = value(at, A_, options_.num_actions);
      if (!action) return std::nullopt;
      path.actions.push_back(*action);
      at += 2;
    }
  }

  template <class Value>
  static const Value& lookup(const std::map<std::string, Value, std::less<>>& splits, std::string_view split) {
    auto it = splits.find(split);
    if (it == splits.end()) {
      throw std::invalid_argument("solution_tree has no eval split '" + std::string(split) + "' (it has: train, train_rl, test)");
    }
    return it->second;
  }

  Options options_;
  uint64_t seed_;
  c10::Device device_;
  int64_t numbers_;
  assay::Vocabulary vocab_;
  int64_t pad_, colon_, S_, P_, C_, A_, I_;
  std::vector<std::vector<int64_t>> T_, PT_, inverse_;  // T[s][a], PT[p][a], inverse[p][p'] = a or -1
  std::vector<std::vector<double>> prior_, context_;   // prior[s][a], context[a][c]
  int64_t prompt_max_ = 0, answer_max_ = 0, length_ = 0;
  std::map<std::string, assay::Batch, std::less<>> eval_;
  std::map<std::string, assay::PromptBatch, std::less<>> eval_prompts_;
  std::vector<assay::SequenceExample> train_rl_;
};

}  // namespace

ASSAY_PLUGIN("solution_tree", "1.0.0") {
  plugin.add<SolutionTree>("solution_tree",
                           "solution-tree navigation (RL coverage wall): plan actions from problem states, execute "
                           "them; SFT data biased by a prior, uniform RL/test; verifiable");
}
