// Multi-step integer word problems with solutions in three formats: the small-scale testbed of "Echo
// Chamber: RL post-training amplifies behaviors learned in pretraining" (Zhao et al. 2025, arXiv 2504.07912).
// A pretraining corpus mixes the formats with a weight each and puts a mistake into a share of each
// format's solutions (its error rate); the verifier executes code with a small safe interpreter
// (interpreter.hpp) and reads prose's boxed answer, so RL can be watched collapsing onto one format.
//
// A problem: entity a has n0; each of k steps (k uniform in [min_steps, max_steps]) gives the next entity
// (b, c, d, e, g, h, k, m, n: no f, the function's name) "n more than", "n less than" or "n times" an
// earlier entity drawn uniformly; the operation is uniform among those that keep the value in
// [0, max_value], then n uniform among the operands that do (more/less: n >= 1, times: n >= 2).
//   prompt:          <bos> a has 3 . b has 5 times a . c has 2 more than a . how many does c have ? <sep>
//   function_code:   def f ( ) : a = 3 ; b = a * 5 ; c = a + 2 ; return c <eos>
//   tagged_code:     <code> a = 3 <nl> b = a * 5 <nl> c = a + 2 <nl> print ( c ) </code> <eos>
//   prose:           a has 3 . b has 3 * 5 = 1 5 . c has 3 + 2 = 5 . boxed { 5 } <eos>
// Numbers are written digit by digit. A mistake rewrites one step on the question's dependency chain (its
// operation or its constant, or a's value) so that the answer changes and every value stays in
// [0, max_value]; the solution then carries it through consistently (well-formed, wrong).
//
// Splits: a problem is a test problem when a hash of its prompt tokens is 0 mod 8. Training (train_batch,
// train_prompts, the "train" eval split) draws only the others, the "test" split only those: disjoint by
// construction. Eval targets are correct solutions in the format of largest weight.
#include "interpreter.hpp"

#include <assay/assay.hpp>
#include <assay/sequences.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>

namespace {

namespace mf = assay::math_formats;

enum Format : int64_t { kFunctionCode = 0, kTaggedCode = 1, kProse = 2 };
const std::vector<std::string> kFormatNames = {"function_code", "tagged_code", "prose"};

// Entity names in order; "f" is left out: it names the function of function_code.
const std::vector<std::string> kEntities = {"a", "b", "c", "d", "e", "g", "h", "k", "m", "n"};

enum class Op { add, sub, mul };

struct Step {
  int64_t ref = 0;  // the earlier entity
  Op op = Op::add;
  int64_t operand = 0;
};

// A problem, or a solution's reading of one: entity 0 = start, entity i + 1 = steps[i] applied to its ref.
struct Program {
  int64_t start = 0;
  std::vector<Step> steps;
};

std::vector<std::string> symbols() {
  std::vector<std::string> s = {"<pad>", "<bos>", "<eos>", "<sep>"};
  for (int d = 0; d <= 9; ++d) s.push_back(std::to_string(d));
  s.insert(s.end(), kEntities.begin(), kEntities.end());
  for (const char* w : {"+", "-", "*", "=", "(", ")", ":", ";"}) s.push_back(w);
  s.emplace_back(mf::kNewline);
  for (const char* w : {"def", "f", "return", "print", "<code>", "</code>", "boxed", "{", "}"}) s.push_back(w);
  for (const char* w : {"has", "more", "less", "than", "times", "how", "many", "does", "have", ".", "?"}) s.push_back(w);
  return s;
}

int64_t digits(int64_t n) { return n < 10 ? 1 : 1 + digits(n / 10); }

uint64_t mix(uint64_t z) {  // SplitMix64's finalizer
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kTestBuckets = 8;  // 1 in 8 problems is a test problem

bool is_test_problem(const std::vector<int64_t>& prompt) {
  uint64_t h = 0;
  for (int64_t t : prompt) h = mix(h ^ static_cast<uint64_t>(t));
  return h % kTestBuckets == 0;
}

// The values of every entity when all of them (and the constants) lie in [0, max_value]; nothing otherwise.
std::optional<std::vector<int64_t>> values_within(const Program& p, int64_t max_value) {
  if (p.start < 0 || p.start > max_value) return std::nullopt;
  std::vector<int64_t> v = {p.start};
  for (const auto& s : p.steps) {
    if (s.ref < 0 || s.ref >= static_cast<int64_t>(v.size()) || s.operand < 0 || s.operand > max_value) return std::nullopt;
    const int64_t x = v[static_cast<size_t>(s.ref)];
    const int64_t y = s.op == Op::add ? x + s.operand : s.op == Op::sub ? x - s.operand : x * s.operand;  // < 2^62
    if (y < 0 || y > max_value) return std::nullopt;
    v.push_back(y);
  }
  return v;
}

class MathFormats : public assay::Task, public assay::AnswerDetails {
 public:
  struct Options {
    int64_t min_steps = 2;
    int64_t max_steps = 4;
    int64_t max_value = 99;
    std::vector<double> weights = {0.5, 0.3, 0.2};
    std::vector<double> error_rates = {0.3, 0.1, 0.2};
    int64_t batch_size = 64;
    int64_t train_eval_size = 512;
    int64_t test_size = 512;
    int64_t eval_seed = 1234;
    bool loss_on_prompt = true;
    int64_t max_call_depth = 16;
    int64_t max_interpreter_steps = 10000;
    void fields(assay::Fields& f) {
      f("min_steps", min_steps, "fewest steps of a problem (entities - 1)").range(1, 9);
      f("max_steps", max_steps, "most steps of a problem (at most 9: entities a..n)").range(1, 9);
      f("max_value", max_value, "largest value of any entity, constant or intermediate result").range(2, 1000000);
      f("weights", weights, "corpus share of [function_code, tagged_code, prose] (normalized)").min(0);
      f("error_rates", error_rates, "share of wrong solutions in each format [function_code, tagged_code, prose]").range(0, 1);
      f("batch_size", batch_size, "documents per training step").min(1);
      f("train_eval_size", train_eval_size, "problems in eval split train (the training distribution)").min(1);
      f("test_size", test_size, "problems in eval split test (never drawn for training)").min(1);
      f("eval_seed", eval_seed, "seed of the eval sets (independent of run.seed)").min(0);
      f("loss_on_prompt", loss_on_prompt, "training batches also score the question (whole-document LM loss)");
      f("max_call_depth", max_call_depth, "verifier: deepest nesting of function calls").range(1, 256);
      f("max_interpreter_steps", max_interpreter_steps, "verifier: statements + instructions one run may execute").range(100, 10000000);
    }
  };

  MathFormats(const Options& options, const assay::Context& context)
      : options_(validated(options)), seed_(context.seed), device_(context.device), vocab_(symbols()) {
    for (int d = 0; d <= 9; ++d) digit_[d] = vocab_.id(std::to_string(d));
    for (const auto& e : kEntities) entity_.push_back(vocab_.id(e));
    pad_ = vocab_.id("<pad>");
    eos_ = vocab_.id("<eos>");
    const double total = std::accumulate(options_.weights.begin(), options_.weights.end(), 0.0);
    for (double w : options_.weights) mixture_.push_back(w / total);
    eval_format_ = std::max_element(mixture_.begin(), mixture_.end()) - mixture_.begin();
    limits_ = {options_.max_interpreter_steps, options_.max_call_depth};

    const int64_t D = digits(options_.max_value), K = options_.max_steps;
    prompt_max_ = 11 + D + K * (6 + D);
    answer_max_ = std::max({11 + D + K * (5 + D), 10 + D + K * (5 + D), 7 + 2 * D + K * (5 + 3 * D)});
    length_ = prompt_max_ + answer_max_ - 1;

    auto split = [&](uint64_t stream, int64_t size, bool test) {
      assay::SplitMix64 rng(static_cast<uint64_t>(options_.eval_seed), stream);
      std::vector<assay::SequenceExample> examples;
      for (int64_t i = 0; i < size; ++i) {
        const Program p = problem(rng, test);
        examples.push_back({prompt_of(p), solution(p, eval_format_)});
      }
      return examples;
    };
    for (const auto& [name, examples] : {std::pair{std::string("train"), split(kTrainEvalStream, options_.train_eval_size, false)},
                                         std::pair{std::string("test"), split(kTestStream, options_.test_size, true)}}) {
      eval_[name] = assay::pack_examples(examples, pad_, length_, device_);
      eval_prompts_[name] = assay::pack_prompts(examples, pad_, device_);
    }
  }

  assay::TaskShape shape() const override { return {vocab_.size(), vocab_.size(), length_}; }

  // Documents: a training problem, a format drawn from the mixture, a mistake with the format's error rate.
  assay::Batch train_batch(int64_t step) override {
    assay::SplitMix64 rng(seed_, static_cast<uint64_t>(step));
    std::vector<assay::SequenceExample> examples;
    examples.reserve(static_cast<size_t>(options_.batch_size));
    for (int64_t i = 0; i < options_.batch_size; ++i) {
      const Program p = problem(rng, false);
      const int64_t format = draw_format(rng);
      const bool wrong = rng.uniform01() < options_.error_rates[static_cast<size_t>(format)];
      examples.push_back({prompt_of(p), solution(wrong ? mistaken(p, rng) : p, format)});
    }
    if (!options_.loss_on_prompt) return assay::pack_examples(examples, pad_, length_, device_);
    auto batch = assay::pack_examples(examples, pad_, length_, c10::kCPU);
    for (size_t r = 0; r < examples.size(); ++r) {  // targets of prompt positions: the next prompt token
      const int64_t n = static_cast<int64_t>(examples[r].prompt.size()) - 1, row = static_cast<int64_t>(r);
      batch.targets[row].narrow(0, 0, n).copy_(batch.inputs[row].narrow(0, 1, n));
    }
    return {batch.inputs.to(device_), batch.targets.to(device_)};
  }

  std::vector<std::string> eval_splits() const override { return {"train", "test"}; }

  assay::Batch eval_batch(std::string_view split) override { return lookup(eval_, split); }

  // Fresh training problems from a stream of their own (kPromptStream ^ step): the first m of n prompts
  // are those of train_prompts(step, m).
  assay::PromptBatch train_prompts(int64_t step, int64_t count) override {
    if (count < 1) throw std::invalid_argument("math_formats: train_prompts needs count >= 1, got " + std::to_string(count));
    if (step < 0) throw std::invalid_argument("math_formats: train_prompts needs step >= 0, got " + std::to_string(step));
    assay::SplitMix64 rng(seed_, kPromptStream ^ static_cast<uint64_t>(step));
    std::vector<assay::SequenceExample> examples;
    for (int64_t i = 0; i < count; ++i) examples.push_back({prompt_of(problem(rng, false)), {}});
    return assay::pack_prompts(examples, pad_, device_);
  }

  assay::PromptBatch eval_prompts(std::string_view split) override { return lookup(eval_prompts_, split); }

  assay::Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const auto expected = answer_to(prompt);
    const auto reading = read(completion);
    const bool right = expected && reading.answer && *reading.answer == *expected;
    return {right ? 1.0 : 0.0, right};
  }

  assay::CompletionFormat completion_format() const override { return {{eos_}, pad_, answer_max_}; }

  std::vector<std::string> answer_forms() const override { return kFormatNames; }
  std::vector<std::string> answer_checks() const override { return {"well_formed"}; }

  assay::AnswerDetail answer_details(const std::vector<int64_t>&, const std::vector<int64_t>& completion) override {
    const auto reading = read(completion);
    return {reading.form, {static_cast<int8_t>(reading.form < 0 ? -1 : reading.answer ? 1 : 0)}};
  }

 private:
  // Streams of eval_seed (splits) and of the run seed XORed with the step (prompts): apart from
  // train_batch's streams (the step itself) for every step below 2^56.
  static constexpr uint64_t kTrainEvalStream = 0x7100000000000000ULL, kTestStream = 0x7300000000000000ULL;
  static constexpr uint64_t kPromptStream = 0x9700000000000000ULL;

  static Options validated(const Options& o) {
    auto fail = [](const std::string& message) { throw std::invalid_argument("math_formats: " + message); };
    // The host enforces the schema's ranges; these are checked again because the code relies on them.
    if (o.min_steps < 1 || o.max_steps > static_cast<int64_t>(kEntities.size()) - 1) {
      fail("steps must lie in [1, 9], got min_steps " + std::to_string(o.min_steps) + ", max_steps " + std::to_string(o.max_steps));
    }
    if (o.max_value < 2 || o.max_value > 1000000) fail("max_value must lie in [2, 1000000], got " + std::to_string(o.max_value));
    if (o.min_steps > o.max_steps) {
      fail("min_steps " + std::to_string(o.min_steps) + " > max_steps " + std::to_string(o.max_steps));
    }
    auto check_three = [&](const char* key, const std::vector<double>& v, double hi) {
      if (v.size() != 3) {
        fail(std::string(key) + " needs 3 entries [function_code, tagged_code, prose], got " + std::to_string(v.size()));
      }
      for (double x : v) {
        if (!std::isfinite(x) || x < 0 || x > hi) fail(std::string(key) + " entries must lie in [0, " + std::to_string(hi) + "], got " + std::to_string(x));
      }
    };
    check_three("weights", o.weights, 1e300);
    check_three("error_rates", o.error_rates, 1);
    if (!(o.weights[0] + o.weights[1] + o.weights[2] > 0)) fail("weights must not all be 0");
    return o;
  }

  // ---- Problems ----

  Program random_program(assay::SplitMix64& rng) const {
    const int64_t max = options_.max_value, k = rng.uniform(options_.min_steps, options_.max_steps);
    Program p;
    p.start = rng.uniform(1, max);
    std::vector<int64_t> values = {p.start};
    for (int64_t i = 0; i < k; ++i) {
      const int64_t ref = rng.uniform(0, i), v = values[static_cast<size_t>(ref)];
      std::vector<Op> feasible;
      if (v < max) feasible.push_back(Op::add);
      if (v >= 1) feasible.push_back(Op::sub);
      if (v >= 1 && 2 * v <= max) feasible.push_back(Op::mul);
      const Op op = feasible[static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(feasible.size()) - 1))];
      const int64_t n = op == Op::add ? rng.uniform(1, max - v) : op == Op::sub ? rng.uniform(1, v) : rng.uniform(2, max / v);
      p.steps.push_back({ref, op, n});
      values.push_back(op == Op::add ? v + n : op == Op::sub ? v - n : v * n);
    }
    return p;
  }

  // A problem from the training part (test = false) or the test part of the problem space. A tiny space
  // (e.g. max_value 2, one step) may have no problem in one part: that fails when the eval splits are built.
  Program problem(assay::SplitMix64& rng, bool test) const {
    for (int64_t draw = 0; draw < 100000; ++draw) {
      Program p = random_program(rng);
      if (is_test_problem(prompt_of(p)) == test) return p;
    }
    throw std::invalid_argument(std::string("math_formats: found no ") + (test ? "test" : "training") +
                                " problem in 100000 draws; the problem space is too small to split (raise max_value or max_steps)");
  }

  int64_t draw_format(assay::SplitMix64& rng) const {
    const double u = rng.uniform01();
    double cumulative = 0;
    int64_t last = 0;
    for (size_t f = 0; f < mixture_.size(); ++f) {
      if (mixture_[f] <= 0) continue;
      cumulative += mixture_[f];
      last = static_cast<int64_t>(f);
      if (u < cumulative) return last;
    }
    return last;  // rounding leftovers
  }

  // `p` with one mistake on the question's dependency chain that changes the answer. Tries random edits;
  // the fallback (the last step's constant - 1) always qualifies: the generator writes more/less constants
  // >= 1 and times constants >= 2 of a value >= 1.
  Program mistaken(const Program& p, assay::SplitMix64& rng) const {
    const int64_t truth = values_within(p, options_.max_value)->back();
    std::vector<int64_t> chain = {static_cast<int64_t>(p.steps.size())};
    while (chain.back() > 0) chain.push_back(p.steps[static_cast<size_t>(chain.back() - 1)].ref);
    for (int attempt = 0; attempt < 16; ++attempt) {
      Program q = p;
      const int64_t e = chain[static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(chain.size()) - 1))];
      const int64_t delta = rng.uniform(1, 3) * (rng.uniform(0, 1) ? 1 : -1);
      if (e == 0) {
        q.start += delta;
      } else if (Step& s = q.steps[static_cast<size_t>(e - 1)]; rng.uniform(0, 1)) {
        s.operand += delta;
      } else {
        s.op = static_cast<Op>((static_cast<int>(s.op) + rng.uniform(1, 2)) % 3);
      }
      const auto v = values_within(q, options_.max_value);
      if (v && v->back() != truth) return q;
    }
    Program q = p;
    q.steps.back().operand -= 1;
    return q;
  }

  // ---- Writing ----

  void number(std::vector<int64_t>& out, int64_t n) const {
    const std::string s = std::to_string(n);
    for (char c : s) out.push_back(digit_[c - '0']);
  }
  void words(std::vector<int64_t>& out, std::initializer_list<std::string_view> ws) const {
    for (auto w : ws) out.push_back(vocab_.id(w));
  }
  int64_t entity(int64_t i) const { return entity_[static_cast<size_t>(i)]; }
  static std::string_view op_symbol(Op op) { return op == Op::add ? "+" : op == Op::sub ? "-" : "*"; }

  std::vector<int64_t> prompt_of(const Program& p) const {
    std::vector<int64_t> out = {vocab_.id("<bos>"), entity(0), vocab_.id("has")};
    number(out, p.start);
    words(out, {"."});
    for (size_t i = 0; i < p.steps.size(); ++i) {
      const Step& s = p.steps[i];
      out.insert(out.end(), {entity(static_cast<int64_t>(i) + 1), vocab_.id("has")});
      number(out, s.operand);
      if (s.op == Op::mul) {
        words(out, {"times"});
      } else {
        words(out, {s.op == Op::add ? "more" : "less", "than"});
      }
      out.push_back(entity(s.ref));
      words(out, {"."});
    }
    words(out, {"how", "many", "does"});
    out.push_back(entity(static_cast<int64_t>(p.steps.size())));
    words(out, {"have", "?", "<sep>"});
    return out;
  }

  // The solution that `p` (the problem, or a mistaken reading of it) gives, in `format`, ending with <eos>.
  std::vector<int64_t> solution(const Program& p, int64_t format) const {
    const auto values = *values_within(p, options_.max_value);
    const int64_t last = entity(static_cast<int64_t>(p.steps.size()));
    std::vector<int64_t> out;
    if (format == kProse) {
      out.insert(out.end(), {entity(0), vocab_.id("has")});
      number(out, p.start);
      words(out, {"."});
      for (size_t i = 0; i < p.steps.size(); ++i) {
        const Step& s = p.steps[i];
        out.insert(out.end(), {entity(static_cast<int64_t>(i) + 1), vocab_.id("has")});
        number(out, values[static_cast<size_t>(s.ref)]);
        words(out, {op_symbol(s.op)});
        number(out, s.operand);
        words(out, {"="});
        number(out, values[i + 1]);
        words(out, {"."});
      }
      words(out, {"boxed", "{"});
      number(out, values.back());
      words(out, {"}", "<eos>"});
      return out;
    }
    const std::string_view separator = format == kFunctionCode ? std::string_view(";") : mf::kNewline;
    if (format == kFunctionCode) {
      words(out, {"def", "f", "(", ")", ":"});
    } else {
      words(out, {"<code>"});
    }
    out.insert(out.end(), {entity(0), vocab_.id("=")});
    number(out, p.start);
    words(out, {separator});
    for (size_t i = 0; i < p.steps.size(); ++i) {
      const Step& s = p.steps[i];
      out.insert(out.end(), {entity(static_cast<int64_t>(i) + 1), vocab_.id("="), entity(s.ref), vocab_.id(op_symbol(s.op))});
      number(out, s.operand);
      words(out, {separator});
    }
    if (format == kFunctionCode) {
      words(out, {"return"});
      out.push_back(last);
    } else {
      words(out, {"print", "("});
      out.push_back(last);
      words(out, {")", "</code>"});
    }
    words(out, {"<eos>"});
    return out;
  }

  // ---- Reading ----

  // A canonical number (no leading zero, at most `max_digits` digits) at tokens[at...]; advances `at`.
  std::optional<int64_t> read_number(const std::vector<int64_t>& tokens, size_t& at, int64_t max_digits) const {
    std::string s;
    for (; at < tokens.size(); ++at) {
      const auto d = std::find(std::begin(digit_), std::end(digit_), tokens[at]);
      if (d == std::end(digit_)) break;
      if (static_cast<int64_t>(s.size()) == max_digits) return std::nullopt;
      s += static_cast<char>('0' + (d - std::begin(digit_)));
    }
    if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    return std::stoll(s);
  }

  // The answer to a prompt the task could write: "<bos> a has N ." then steps "X has N (more than | less
  // than | times) Y ." naming the entities in order, each Y earlier, every value in [0, max_value], then
  // "how many does Z have ? <sep>" with Z the last entity. Nothing for anything else.
  std::optional<int64_t> answer_to(const std::vector<int64_t>& prompt) const {
    const int64_t D = digits(options_.max_value);
    size_t at = 0;
    auto accept = [&](std::string_view word) {
      if (at >= prompt.size() || prompt[at] != vocab_.id(word)) return false;
      ++at;
      return true;
    };
    auto accept_id = [&](int64_t id) {
      if (at >= prompt.size() || prompt[at] != id) return false;
      ++at;
      return true;
    };
    Program p;
    if (!accept("<bos>") || !accept_id(entity(0)) || !accept("has")) return std::nullopt;
    const auto start = read_number(prompt, at, D);
    if (!start || !accept(".")) return std::nullopt;
    p.start = *start;
    while (at < prompt.size() && prompt[at] != vocab_.id("how")) {
      const auto i = static_cast<int64_t>(p.steps.size()) + 1;
      if (i >= static_cast<int64_t>(kEntities.size()) || !accept_id(entity(i)) || !accept("has")) return std::nullopt;
      Step s;
      const auto n = read_number(prompt, at, D);
      if (!n) return std::nullopt;
      s.operand = *n;
      if (accept("times")) {
        s.op = Op::mul;
      } else if (accept("more")) {
        s.op = Op::add;
      } else if (accept("less")) {
        s.op = Op::sub;
      } else {
        return std::nullopt;
      }
      if (s.op != Op::mul && !accept("than")) return std::nullopt;
      const auto ref = at < prompt.size() ? std::find(entity_.begin(), entity_.begin() + i, prompt[at]) - entity_.begin() : i;
      if (ref >= i) return std::nullopt;
      ++at;
      s.ref = ref;
      if (!accept(".")) return std::nullopt;
      p.steps.push_back(s);
    }
    if (p.steps.empty() || !accept("how") || !accept("many") || !accept("does") ||
        !accept_id(entity(static_cast<int64_t>(p.steps.size()))) || !accept("have") || !accept("?") || !accept("<sep>") ||
        at != prompt.size()) {
      return std::nullopt;
    }
    const auto values = values_within(p, options_.max_value);
    if (!values) return std::nullopt;
    return values->back();
  }

  struct Reading {
    int64_t form = -1;
    std::optional<int64_t> answer;
  };

  // The verifier's rule on the tokens before the first <eos>: tagged code if there is a <code> (the first
  // block, which must be closed; the last value printed), else function code if there is a def (its line,
  // then a call of the function it names; the value returned), else prose if there is a boxed (the last
  // one, followed by "{ digits }").
  Reading read(const std::vector<int64_t>& completion) const {
    std::vector<std::string> text;
    for (int64_t t : completion) {
      if (t == eos_) break;
      text.push_back(t >= 0 && t < vocab_.size() ? vocab_.symbol(t) : "<invalid>");
    }
    auto find = [&](std::string_view word, size_t from = 0) {
      return static_cast<size_t>(std::find(text.begin() + static_cast<std::ptrdiff_t>(std::min(from, text.size())), text.end(), word) - text.begin());
    };
    auto tokens = [&](size_t begin, size_t end) { return std::vector<std::string>(text.begin() + static_cast<std::ptrdiff_t>(begin), text.begin() + static_cast<std::ptrdiff_t>(end)); };
    auto value = [](const mf::Outcome& o) { return o.ok() ? std::optional<int64_t>(o.value) : std::nullopt; };
    if (const size_t open = find("<code>"); open < text.size()) {
      const size_t close = find("</code>", open + 1);
      if (close == text.size()) return {kTaggedCode, std::nullopt};
      return {kTaggedCode, value(mf::run_printing(tokens(open + 1, close), limits_))};
    }
    if (const size_t def = find("def"); def < text.size()) {
      const size_t end = find(mf::kNewline, def);
      const std::string name = def + 1 < text.size() ? text[def + 1] : "";
      return {kFunctionCode, value(mf::run_calling(tokens(def, end), name, limits_))};
    }
    const size_t boxed = static_cast<size_t>(std::find(text.rbegin(), text.rend(), "boxed").base() - text.begin());  // one past it
    if (boxed == 0) return {};
    std::vector<int64_t> ids(completion.begin() + static_cast<std::ptrdiff_t>(boxed), completion.begin() + static_cast<std::ptrdiff_t>(text.size()));
    size_t at = 0;
    if (ids.empty() || ids[0] != vocab_.id("{")) return {kProse, std::nullopt};
    ++at;
    const auto n = read_number(ids, at, 18);
    if (!n || at >= ids.size() || ids[at] != vocab_.id("}")) return {kProse, std::nullopt};
    return {kProse, n};
  }

  template <class Value>
  static const Value& lookup(const std::map<std::string, Value, std::less<>>& splits, std::string_view split) {
    auto it = splits.find(split);
    if (it == splits.end()) throw std::invalid_argument("math_formats has no eval split '" + std::string(split) + "' (it has: train, test)");
    return it->second;
  }

  Options options_;
  uint64_t seed_;
  c10::Device device_;
  assay::Vocabulary vocab_;
  int64_t digit_[10] = {};
  std::vector<int64_t> entity_;
  int64_t pad_ = 0, eos_ = 0;
  std::vector<double> mixture_;  // normalized weights
  int64_t eval_format_ = 0;
  mf::Limits limits_;
  int64_t prompt_max_ = 0, answer_max_ = 0, length_ = 0;
  std::map<std::string, assay::Batch, std::less<>> eval_;
  std::map<std::string, assay::PromptBatch, std::less<>> eval_prompts_;
};

}  // namespace

ASSAY_PLUGIN("math_formats", "1.0.0") {
  plugin.add<MathFormats>("math_formats",
                          "multi-step word problems solved as function code, tagged code or prose (echo chamber); "
                          "a corpus with a weight and an error rate per format; verifiable by execution");
}
