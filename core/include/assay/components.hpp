#pragma once
/// @file The six component kinds a plugin can provide. A component is a class deriving from one of
/// these interfaces, with a nested `Options` struct (see options.hpp) and a constructor
/// `Class(const Options&, const Context&)`; register it in the plugin's ASSAY_PLUGIN block (plugin.hpp).
#include <assay/options.hpp>
#include <assay/recorder.hpp>

#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace assay {

enum class Kind { task, model, optimizer, precision, algorithm, analyzer };
/// "task", "model", ...: the recipe table a kind is configured in (analyzers: [[analyzers]]).
std::string_view kind_name(Kind kind);

/// Common base of every component: lets the host own any of them through one pointer type.
class Component {
 public:
  virtual ~Component() = default;
};

class Task;
class Model;
class Optimizer;

/// Shape of a task's data; models and algorithms size themselves from it.
struct TaskShape {
  int64_t vocab_size = 0;    ///< input token ids lie in [0, vocab_size)
  int64_t num_classes = 0;   ///< logits per prediction
  int64_t input_length = 0;  ///< tokens per example (the maximum, for variable-length tasks)
};

/// What a component is built with. Pointers are null for what does not exist yet when it is built
/// (a task is built first, then the model, then the rest); they stay valid for the stage's lifetime.
struct Context {
  uint64_t seed = 0;             ///< the run's seed
  c10::Device device{c10::kCPU}; ///< where tensors live
  TaskShape task_shape;
  Task* task = nullptr;
  Model* model = nullptr;
  Optimizer* optimizer = nullptr;
  Recorder* recorder = nullptr;  ///< this component's view on the run store
  /// Per model parameter group, this component's values with the recipe's [<table>.groups.<group>]
  /// overrides applied (e.g. a per-group learning rate). Groups without overrides are absent.
  std::map<std::string, Values> group_values;
};

/// The Options of parameter group `group`: its overrides from the recipe, else `fallback`.
template <class Options>
Options options_for_group(const Context& context, const std::string& group, const Options& fallback) {
  auto it = context.group_values.find(group);
  return it == context.group_values.end() ? fallback : options_from<Options>(it->second);
}

/// Throws std::invalid_argument when the recipe overrides a group the model does not have.
void check_group_names(const Context& context, Model& model);

/// A non-empty model parameter group with its Options (the recipe's per-group overrides applied).
template <class Options>
struct OptionsGroup {
  std::string name;
  Options options;
  std::vector<at::Tensor> params;
};

/// A batch of examples. inputs: int64 token ids [B, T]. targets: int64 class ids, either [B] (one label
/// per example) or [B, T] (per token; -100 = ignored).
struct Batch {
  at::Tensor inputs;
  at::Tensor targets;
};

/// Prompts to continue (what the sampler takes): tokens [B, T] int64, right-padded to the longest
/// prompt, and lengths [B] int64, each prompt's number of tokens.
struct PromptBatch {
  at::Tensor tokens;
  at::Tensor lengths;
};

/// How completions of a verifiable task's prompts end (what an algorithm passes to the sampler).
struct CompletionFormat {
  std::vector<int64_t> stop_tokens;  ///< a completion ends after one of these
  int64_t pad_token = 0;             ///< fills positions after the end
  int64_t max_new_tokens = 0;        ///< the longest completion the task asks for
};

/// A task's judgement of one completion.
struct Verdict {
  double reward = 0;     ///< what RL maximizes
  bool correct = false;  ///< what pass@k and precision count
};

/// Data and evaluation sets.
class Task : public Component {
 public:
  static constexpr Kind kind = Kind::task;
  virtual TaskShape shape() const = 0;
  /// The training batch of global step `step`: a pure function of (seed, step), so that a resumed run
  /// sees exactly the data an uninterrupted one would.
  virtual Batch train_batch(int64_t step) = 0;
  /// Names of the evaluation sets, e.g. {"train", "test"}.
  virtual std::vector<std::string> eval_splits() const = 0;
  /// One whole evaluation set.
  virtual Batch eval_batch(std::string_view split) = 0;

  // Verifiable tasks (prompts with a checker: RL, pass@k, expert iteration) override the four below;
  // the defaults throw std::logic_error (the task is not verifiable).

  /// `count` training prompts for step `step`: a pure function of (seed, step), like train_batch.
  virtual PromptBatch train_prompts(int64_t step, int64_t count);
  /// Every prompt of eval split `split` (the same problems as eval_batch(split), in the same order).
  virtual PromptBatch eval_prompts(std::string_view split);
  /// Judges `completion` (generated tokens up to and including the stop token, no padding) as an answer to
  /// `prompt` (its tokens, no padding). Must not throw on malformed completions: they are wrong answers.
  virtual Verdict score(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion);
  /// Stop and pad tokens and the longest expected completion.
  virtual CompletionFormat completion_format() const;
};

/// Parameters addressed together by optimizers and precision rules ("embedding", "head", ...).
struct ParamGroup {
  std::string name;
  std::vector<at::Tensor> params;
};

/// Keys and values of the positions a sequence model has already processed, one entry per attention
/// layer, so that generation feeds only the new tokens to each forward. The model allocates and fills
/// the tensors (its own layout); the caller owns the cache and sets its capacity.
struct KVCache {
  std::vector<at::Tensor> keys, values;  ///< per layer, allocated by the model on first use
  int64_t length = 0;                    ///< positions held; the next forward writes from here
  int64_t capacity = 0;                  ///< positions to allocate (prompt + new tokens)
};

/// A forward pass over the next `T` positions of a batch of sequences.
struct ForwardArgs {
  /// bool [B, 1, T, K] with K = cached + T positions: true where query t may attend to key k.
  /// Undefined = causal over the cached and the new positions.
  at::Tensor attention_mask;
  /// int64 [B, T]: the positions of the new tokens (e.g. to skip left padding). Undefined =
  /// cache length + 0, 1, ..., T-1.
  at::Tensor position_ids;
  /// Read earlier positions from it and append this call's; null = attend to the given tokens only.
  KVCache* cache = nullptr;
};

/// A network. Register parameters with torch::nn::Module's register_parameter/register_module as
/// usual; the host saves and restores them by name.
class Model : public Component, public torch::nn::Module {
 public:
  static constexpr Kind kind = Kind::model;
  /// Logits [B, C] for one label per example, or [B, T, C] per token.
  virtual at::Tensor forward(const at::Tensor& inputs) = 0;
  /// Per-token logits [B, T, C] with an attention mask, position ids or a KV cache (sequence models;
  /// the sampler uses it). Default: plain forward(inputs) when `args` is empty, else throws
  /// std::logic_error (the model does not support it).
  virtual at::Tensor forward_with(const at::Tensor& inputs, const ForwardArgs& args);
  /// The residual stream [B, T, width] after each of `layers` (0 = the embeddings, l = after block l;
  /// negative l counts from the end: -1 = after the last block), for analyzers, value heads and feature
  /// extraction. Default: throws std::logic_error.
  virtual std::vector<at::Tensor> hidden_states(const at::Tensor& inputs, const std::vector<int64_t>& layers);
  /// Named parameter groups covering every trainable parameter once. Default: one group "all".
  virtual std::vector<ParamGroup> param_groups();
  /// Tensors whose first dimension indexes hidden neurons (theta_i = concatenated rows i), for
  /// per-neuron norms such as L_{2,k} regularizers and normalized margins. Empty when not meaningful.
  virtual std::vector<at::Tensor> neuron_parameters() { return {}; }
  /// k such that f(c * theta) = c^k f(theta) for c > 0, or 0 when the model is not homogeneous.
  virtual int homogeneity() const { return 0; }
};

/// What an optimizer is built from: the model's parameter groups (empty ones skipped), each with its
/// Options. Throws std::invalid_argument when the context has no model or the recipe sets options for
/// a group the model does not have.
template <class Options>
std::vector<OptionsGroup<Options>> groups_with_options(const Context& context, const Options& options) {
  if (!context.model) throw std::invalid_argument("an optimizer needs a model in its context");
  check_group_names(context, *context.model);
  std::vector<OptionsGroup<Options>> out;
  for (auto& group : context.model->param_groups()) {
    if (!group.params.empty()) out.push_back({group.name, options_for_group(context, group.name, options), group.params});
  }
  return out;
}

/// ||theta_i||_2 per hidden neuron i over model.neuron_parameters() ([neurons]; empty tensor when the
/// model has none), differentiable, in `dtype` (float64 for analysis).
at::Tensor neuron_norms(Model& model, c10::ScalarType dtype = c10::kFloat);

/// Updates parameters from their .grad. Learning-rate schedules are applied by the host through
/// set_lr_factor; gradients are zeroed by the host.
class Optimizer : public Component {
 public:
  static constexpr Kind kind = Kind::optimizer;
  virtual void step() = 0;
  /// Scales every group's configured learning rate by `factor` from the next step on.
  virtual void set_lr_factor(double factor) = 0;
  /// Current learning rate of the first group (what the host logs as `train.lr`).
  virtual double lr() const = 0;
  /// State for checkpoints; a save followed by load must continue bit-identically.
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
  /// True when step() can be captured in a CUDA graph (run.cuda_graph): no host synchronization, the
  /// step count and the learning rate read from device memory that set_lr_factor updates. Default: false.
  virtual bool capturable() const { return false; }
};

/// Number formats used by a model's computation.
class Precision : public Component {
 public:
  static constexpr Kind kind = Kind::precision;
  /// Transforms the model once, right after it is built (cast, wrap its linear layers, ...).
  virtual void apply(Model& model) = 0;
  /// Called before every training step; a scheme that switches format records an event here.
  virtual void on_step(int64_t step) { (void)step; }
  /// True when the model's forward and backward under this scheme can be captured in a CUDA graph (its
  /// kernels run on the current stream and never wait on the host). Default: false.
  virtual bool capturable() const { return false; }
};

/// True while the host trains a stage through a captured CUDA graph (run.cuda_graph): the tensors a
/// capturable Algorithm::loss reads must keep their shapes and addresses.
bool cuda_graph_active();

/// Loss of one step (or micro-batch), and scalars to record beside it.
struct StepOutput {
  at::Tensor loss;
  std::vector<std::pair<std::string, double>> metrics;  ///< recorded as "train.<name>"
  /// Share of the step's batch this micro-batch holds; the host back-propagates loss * weight.
  /// 0 = 1 / micro_count (equal micro-batches).
  double weight = 0;
  /// Like `metrics`, as 0-dim tensors the host reads after the step (all in one transfer): no host
  /// synchronization inside loss(), which CUDA-graph capture requires.
  std::vector<std::pair<std::string, at::Tensor>> tensor_metrics;
};

/// A training algorithm: how a step's loss is computed.
class Algorithm : public Component {
 public:
  static constexpr Kind kind = Kind::algorithm;
  /// Loss of micro-batch `micro` (of `micro_count`, the recipe's grad_accum) at `step`. The host
  /// back-propagates loss * weight, accumulates, clips and steps the optimizer.
  virtual StepOutput loss(int64_t step, int micro, int micro_count) = 0;
  /// Called once before each step's loss() calls and outside any CUDA-graph capture: fetch the step's data
  /// into the tensors loss() reads (in place, when capturable). Default: nothing.
  virtual void prepare(int64_t step) { (void)step; }
  /// True when loss() can be captured in a CUDA graph (run.cuda_graph): its device work reads only tensors
  /// that prepare() refreshes in place, it never synchronizes with the host (no .item(): report values
  /// through StepOutput::tensor_metrics) and its host-side control flow is the same every step. Default: false.
  virtual bool capturable() const { return false; }
  /// Evaluation metrics (e.g. "eval.test.loss"), written through the context's recorder.
  virtual void evaluate(int64_t step) { (void)step; }
  /// State for checkpoints (e.g. an RL reference policy), saved with the model. A save followed by load
  /// must continue identically. Not called when a run resumes at the start of a stage. Default: none.
  virtual void save(torch::serialize::OutputArchive& archive) const { (void)archive; }
  virtual void load(torch::serialize::InputArchive& archive) { (void)archive; }
};

/// Measures the model during training and writes what it finds into the run store.
class Analyzer : public Component {
 public:
  static constexpr Kind kind = Kind::analyzer;
  /// At every eval step: step 0 (when run.eval_every > 0), every eval_every steps and the last step of
  /// each stage.
  virtual void on_eval(int64_t step) = 0;
  /// Once, after the last step of the stage.
  virtual void on_end(int64_t step) { (void)step; }
};

}  // namespace assay
