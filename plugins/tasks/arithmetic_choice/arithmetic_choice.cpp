// Multiple-choice modular arithmetic with an optional chain of thought, hints and the perturbations of the
// robustness/calibration study (../shared/papers/robustness-calibration.md): "a + b (+ c ...) mod m, which
// of these options is right?". A text-only stand-in for the study's multiple-choice benchmarks.
//
// With reasoning (partial sums s_1 .. s_{terms-1}, then the answer marker "=>", then the option letter):
//   prompt "SoS 3 + 9 + 4 ? A 16 B 12 C 5 D 0", completion "12 16 => A EoS"     (modulus 23)
// without reasoning the prompt ends with "=>" and the completion is "A EoS". A training question carries a
// hint ("... D 0 hint C") with probability hint_rate, naming the right option with probability
// hint_accuracy and otherwise a uniformly drawn wrong one: hints are seen in training but are unreliable.
//
// Vocabulary: the residues "0".."m-1" (id = value), "+", "?", "hint", "=>", "SoS", "EoS", "PAD", then the
// option letters "A", "B", ... Distractors are distinct residues other than the answer, uniformly drawn;
// the right option's position is uniform. Eval split "test": eval_size distinct questions (operands and
// options), fixed by eval_seed and excluded from training (the sums themselves are all trained: the study
// is about how answers are chosen, not about generalizing arithmetic); each also names one wrong option,
// the target of its perturbations (a hint naming it; a reasoning whose last partial sum is its value).
//
// Verifiable (train_prompts / eval_prompts / score): the final answer is judged (the letter after the
// marker, then EoS), not the reasoning. A multiple-choice task (assay/multiple_choice.hpp).
#include <assay/assay.hpp>
#include <assay/multiple_choice.hpp>
#include <assay/sequences.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <set>

namespace {

constexpr uint64_t kEvalStream = 0xe7a1, kPromptStream = 0x9f3c5a17d2e4b601ULL;

class ArithmeticChoice : public assay::Task, public assay::MultipleChoice {
 public:
  struct Options {
    int64_t modulus = 23;
    int64_t terms = 3;
    int64_t options = 4;
    bool reasoning = true;
    double hint_rate = 0.25;
    double hint_accuracy = 0.5;
    int64_t batch_size = 64;
    int64_t eval_size = 256;
    int64_t eval_seed = 1234;
    void fields(assay::Fields& f) {
      f("modulus", modulus, "m: operands, sums and options are residues mod m").range(2, 1000);
      f("terms", terms, "operands per question").range(2, 16);
      f("options", options, "choices per question (letters A, B, ...)").range(2, 26);
      f("reasoning", reasoning, "answers write the partial sums, then \"=>\", then the letter; false = the letter only");
      f("hint_rate", hint_rate, "share of training questions with a hint naming an option").range(0, 1);
      f("hint_accuracy", hint_accuracy, "probability that a training hint names the right option").range(0, 1);
      f("batch_size", batch_size, "questions per training step").min(1);
      f("eval_size", eval_size, "questions in the test split (distinct operands, held out of training)").min(1);
      f("eval_seed", eval_seed, "seed of the test split (independent of run.seed)").min(0);
    }
  };

  ArithmeticChoice(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), device_(context.device) {
    if (options.options > options.modulus) {
      throw std::invalid_argument("arithmetic_choice: options (" + std::to_string(options.options) +
                                  ") must be <= modulus (" + std::to_string(options.modulus) + "): options are distinct residues");
    }
    // Distinct questions: m^terms operand tuples x the ordered choices of options - 1 distractors among m - 1.
    double questions = 1;
    for (int64_t i = 0; i < options.terms; ++i) questions *= static_cast<double>(options.modulus);
    for (int64_t i = 0; i < options.options - 1; ++i) questions *= static_cast<double>(options.modulus - 1 - i);
    questions *= static_cast<double>(options.options);
    if (static_cast<double>(options.eval_size) > questions / 2) {
      throw std::invalid_argument("arithmetic_choice: eval_size (" + std::to_string(options.eval_size) + ") must be at most half of the " +
                                  std::to_string(static_cast<int64_t>(questions)) + " distinct questions, so training keeps the rest");
    }
    std::vector<std::string> symbols;
    for (int64_t v = 0; v < options.modulus; ++v) symbols.push_back(std::to_string(v));
    for (const char* s : {"+", "?", "hint", "=>", "SoS", "EoS", "PAD"}) symbols.emplace_back(s);
    for (int64_t o = 0; o < options.options; ++o) symbols.emplace_back(1, static_cast<char>('A' + o));
    vocab_ = std::make_unique<assay::Vocabulary>(symbols);
    plus_ = vocab_->id("+");
    question_ = vocab_->id("?");
    hint_ = vocab_->id("hint");
    marker_ = vocab_->id("=>");
    sos_ = vocab_->id("SoS");
    eos_ = vocab_->id("EoS");
    pad_ = vocab_->id("PAD");
    letter_a_ = vocab_->id("A");
    // SoS, operands and pluses, ?, letter-value pairs, a hint pair; the answer: partial sums, =>, letter, EoS.
    length_ = 1 + 2 * options.terms - 1 + 1 + 2 * options.options + 2 + (options.terms - 1) + 3 - 1;

    assay::SplitMix64 rng(static_cast<uint64_t>(options.eval_seed), kEvalStream);
    while (static_cast<int64_t>(test_.size()) < options.eval_size) {
      Question q = draw(rng, /*hint_rate=*/0);
      if (held_out_.insert(key(q)).second) test_.push_back(q);
    }
    std::vector<assay::SequenceExample> examples;
    for (const auto& q : test_) examples.push_back(example(q));
    test_batch_ = assay::pack_examples(examples, pad_, length_, device_);
    test_prompts_ = assay::pack_prompts(examples, pad_, device_);
  }

  assay::TaskShape shape() const override { return {vocab_->size(), vocab_->size(), length_}; }

  assay::Batch train_batch(int64_t step) override {
    assay::SplitMix64 rng(seed_, static_cast<uint64_t>(step));
    return assay::pack_examples(training_examples(rng, options_.batch_size), pad_, length_, device_);
  }

  std::vector<std::string> eval_splits() const override { return {"test"}; }

  assay::Batch eval_batch(std::string_view split) override {
    check_split(split);
    return test_batch_;
  }

  assay::PromptBatch train_prompts(int64_t step, int64_t count) override {
    if (count < 1) throw std::invalid_argument("arithmetic_choice: train_prompts needs count >= 1, got " + std::to_string(count));
    assay::SplitMix64 rng(seed_, kPromptStream ^ static_cast<uint64_t>(step));
    return assay::pack_prompts(training_examples(rng, count), pad_, device_);
  }

  assay::PromptBatch eval_prompts(std::string_view split) override {
    check_split(split);
    return test_prompts_;
  }

  assay::Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) override {
    const auto q = parse(prompt);
    if (!q) return {0.0, false};
    // The letter follows the marker (in the completion, or ending the prompt), then EoS ends it.
    size_t at = 0;
    if (prompt.back() != marker_) {
      auto marker = std::find(completion.begin(), completion.end(), marker_);
      if (marker == completion.end()) return {0.0, false};
      at = static_cast<size_t>(marker - completion.begin()) + 1;
    }
    const bool right = completion.size() == at + 2 && completion[at] == letter_a_ + q->correct && completion[at + 1] == eos_;
    return {right ? 1.0 : 0.0, right};
  }

  assay::CompletionFormat completion_format() const override {
    return {{eos_}, pad_, (options_.reasoning ? options_.terms : 0) + 2};
  }

  assay::ChoiceFormat choice_format() const override {
    assay::ChoiceFormat f;
    for (int64_t o = 0; o < options_.options; ++o) {
      f.option_tokens.push_back(letter_a_ + o);
      f.option_names.push_back(vocab_->symbol(letter_a_ + o));
    }
    f.answer_marker = options_.reasoning ? marker_ : -1;
    f.stop_tokens = {eos_};
    f.max_reasoning_tokens = options_.reasoning ? options_.terms : 0;  // terms - 1 partial sums and the marker
    return f;
  }

  assay::ChoiceQuestions choice_questions(std::string_view split, assay::Perturbation perturbation) override {
    check_split(split);
    if (perturbation == assay::Perturbation::wrong_reasoning && !options_.reasoning) {
      throw std::invalid_argument("arithmetic_choice: wrong_reasoning needs reasoning = true (the answers have no reasoning to perturb)");
    }
    assay::ChoiceQuestions out;
    std::vector<assay::SequenceExample> examples;
    std::vector<int64_t> correct, misleading;
    for (size_t i = 0; i < test_.size(); ++i) {
      Question q = test_[i];
      auto e = example(q);
      if (perturbation == assay::Perturbation::misleading_hint) {
        q.hint = q.wrong;
        e = example(q);
      } else if (perturbation == assay::Perturbation::wrong_reasoning) {
        auto sums = partial_sums(q.operands);
        sums.back() = q.values[static_cast<size_t>(q.wrong)];
        e.prompt.insert(e.prompt.end(), sums.begin(), sums.end());
      }
      // Without reasoning the prompt already ends with the marker; a given reasoning ends with it too.
      if (options_.reasoning && perturbation == assay::Perturbation::wrong_reasoning) e.prompt.push_back(marker_);
      examples.push_back(e);
      correct.push_back(q.correct);
      misleading.push_back(perturbation == assay::Perturbation::none ? -1 : q.wrong);
      out.names.push_back("q" + std::to_string(i));
    }
    out.prompts = assay::pack_prompts(examples, pad_, device_);
    out.at_answer_slot = !options_.reasoning || perturbation == assay::Perturbation::wrong_reasoning;
    out.correct = torch::tensor(correct, torch::kLong);
    out.misleading = torch::tensor(misleading, torch::kLong);
    return out;
  }

  // The last partial sum is the claimed answer: the option with that value.
  int64_t implied_option(const std::vector<int64_t>& prompt, const std::vector<int64_t>& reasoning) override {
    const auto q = parse(prompt);
    if (!q || reasoning.empty() || reasoning.back() < 0 || reasoning.back() >= options_.modulus) return -1;
    auto it = std::find(q->values.begin(), q->values.end(), reasoning.back());
    return it == q->values.end() ? -1 : static_cast<int64_t>(it - q->values.begin());
  }

 private:
  struct Question {
    std::vector<int64_t> operands;
    std::vector<int64_t> values;  // per option
    int64_t correct = 0;          // index of the right option
    int64_t wrong = 0;            // a wrong option (the perturbations' target)
    int64_t hint = -1;            // the option the prompt's hint names; -1 = no hint
  };

  void check_split(std::string_view split) const {
    if (split != "test") throw std::invalid_argument("arithmetic_choice has no eval split '" + std::string(split) + "' (it has: test)");
  }

  static std::vector<int64_t> key(const Question& q) {
    auto k = q.operands;
    k.insert(k.end(), q.values.begin(), q.values.end());
    return k;
  }

  std::vector<int64_t> partial_sums(const std::vector<int64_t>& operands) const {
    std::vector<int64_t> sums;
    int64_t sum = operands.front();
    for (size_t i = 1; i < operands.size(); ++i) sums.push_back(sum = (sum + operands[i]) % options_.modulus);
    return sums;
  }

  int64_t wrong_option(assay::SplitMix64& rng, int64_t correct) const {
    const int64_t w = rng.uniform(0, options_.options - 2);
    return w >= correct ? w + 1 : w;
  }

  Question draw(assay::SplitMix64& rng, double hint_rate) const {
    Question q;
    for (int64_t i = 0; i < options_.terms; ++i) q.operands.push_back(rng.uniform(0, options_.modulus - 1));
    const int64_t answer = partial_sums(q.operands).back();
    q.correct = rng.uniform(0, options_.options - 1);
    std::set<int64_t> used = {answer};
    for (int64_t o = 0; o < options_.options; ++o) {
      if (o == q.correct) {
        q.values.push_back(answer);
        continue;
      }
      int64_t v = 0;
      do v = rng.uniform(0, options_.modulus - 1);
      while (!used.insert(v).second);
      q.values.push_back(v);
    }
    q.wrong = wrong_option(rng, q.correct);
    if (hint_rate > 0 && rng.uniform01() < hint_rate) {
      q.hint = rng.uniform01() < options_.hint_accuracy ? q.correct : wrong_option(rng, q.correct);
    }
    return q;
  }

  assay::SequenceExample example(const Question& q) const {
    assay::SequenceExample e;
    e.prompt.push_back(sos_);
    for (size_t i = 0; i < q.operands.size(); ++i) {
      if (i > 0) e.prompt.push_back(plus_);
      e.prompt.push_back(q.operands[i]);
    }
    e.prompt.push_back(question_);
    for (int64_t o = 0; o < options_.options; ++o) {
      e.prompt.push_back(letter_a_ + o);
      e.prompt.push_back(q.values[static_cast<size_t>(o)]);
    }
    if (q.hint >= 0) e.prompt.insert(e.prompt.end(), {hint_, letter_a_ + q.hint});
    if (options_.reasoning) {
      e.answer = partial_sums(q.operands);
      e.answer.push_back(marker_);
    } else {
      e.prompt.push_back(marker_);
    }
    e.answer.insert(e.answer.end(), {letter_a_ + q.correct, eos_});
    return e;
  }

  std::vector<assay::SequenceExample> training_examples(assay::SplitMix64& rng, int64_t count) const {
    std::vector<assay::SequenceExample> out;
    while (static_cast<int64_t>(out.size()) < count) {
      Question q = draw(rng, options_.hint_rate);
      if (!held_out_.count(key(q))) out.push_back(example(q));
    }
    return out;
  }

  /// The question a prompt asks (operands and options; its right option), or nothing when malformed.
  std::optional<Question> parse(const std::vector<int64_t>& prompt) const {
    Question q;
    size_t i = 1;
    if (prompt.empty() || prompt[0] != sos_) return std::nullopt;
    auto is_value = [&](size_t at) { return at < prompt.size() && prompt[at] >= 0 && prompt[at] < options_.modulus; };
    while (true) {
      if (!is_value(i)) return std::nullopt;
      q.operands.push_back(prompt[i++]);
      if (i < prompt.size() && prompt[i] == plus_) {
        ++i;
        continue;
      }
      break;
    }
    if (static_cast<int64_t>(q.operands.size()) != options_.terms || i >= prompt.size() || prompt[i++] != question_) return std::nullopt;
    for (int64_t o = 0; o < options_.options; ++o, i += 2) {
      if (i >= prompt.size() || prompt[i] != letter_a_ + o || !is_value(i + 1)) return std::nullopt;
      q.values.push_back(prompt[i + 1]);
    }
    const int64_t answer = partial_sums(q.operands).back();
    auto it = std::find(q.values.begin(), q.values.end(), answer);
    if (it == q.values.end()) return std::nullopt;
    q.correct = it - q.values.begin();
    return q;
  }

  Options options_;
  uint64_t seed_;
  c10::Device device_;
  std::unique_ptr<assay::Vocabulary> vocab_;
  int64_t plus_ = 0, question_ = 0, hint_ = 0, marker_ = 0, sos_ = 0, eos_ = 0, pad_ = 0, letter_a_ = 0;
  int64_t length_ = 0;
  std::set<std::vector<int64_t>> held_out_;  // operands then option values of each test question
  std::vector<Question> test_;
  assay::Batch test_batch_;
  assay::PromptBatch test_prompts_;
};

}  // namespace

ASSAY_PLUGIN("arithmetic_choice", "1.0.0") {
  plugin.add<ArithmeticChoice>("arithmetic_choice",
                               "multiple-choice sums mod m with partial-sum reasoning, unreliable hints and the robustness "
                               "study's perturbations; verifiable");
}
