// `assay run`: builds a recipe's components and trains, stage by stage, writing the run store.
#include "checkpoint.hpp"
#include "commands.hpp"
#include "data_parallel.hpp"
#include "env.hpp"
#include "log_sinks.hpp"
#include "mixed_precision.hpp"
#include "step_graph.hpp"
#include "progress.hpp"
#include "recipe.hpp"
#include "registry.hpp"
#include "store.hpp"

#include <assay/layers.hpp>
#include <assay/log.hpp>

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <torch/utils.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;

namespace assay {
namespace {

std::atomic<int> g_signal{0};
void on_signal(int signal) { g_signal = signal; }

/// The components of one stage (the model lives across stages).
struct StageComponents {
  std::shared_ptr<Task> task;
  std::shared_ptr<Optimizer> optimizer;
  std::shared_ptr<Algorithm> algorithm;
  std::shared_ptr<Precision> precision;
  std::vector<std::shared_ptr<Analyzer>> analyzers;
};

/// `local_rank`: a data-parallel rank's index on its host, which picks its GPU.
c10::Device pick_device(const std::string& wanted, int local_rank) {
  if (wanted == "cuda" || (wanted == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw std::runtime_error("run.device = \"cuda\" but no CUDA device is available");
    const int count = static_cast<int>(torch::cuda::device_count());
    if (local_rank >= count) {
      throw std::runtime_error("local rank " + std::to_string(local_rank) + " needs a GPU of its own, and " +
                               std::to_string(count) + " are visible");
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  }
  return c10::Device(c10::kCPU);
}

/// A component's values as one comparable list of TOML spellings.
std::vector<std::string> values_list(const Values& values) {
  std::vector<std::string> out;
  for (const auto& [key, value] : values) out.push_back(key + "=" + to_toml(value));
  return out;
}

std::string default_run_dir(const std::string& name) {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return (fs::path("runs") / (name + "-" + stamp)).string();
}

class Trainer {
 public:
  /// `dp`: the data-parallel group, or null for a single process.
  Trainer(const Recipe& recipe, const Registry& registry, RunStore& store, std::string run_dir, c10::Device device,
          DataParallel* dp)
      : recipe_(recipe), registry_(registry), store_(store), run_dir_(std::move(run_dir)), device_(device), dp_(dp),
        lead_(!dp || dp->info().rank == 0) {}

  /// Trains from `from` (global steps done, stage index) to the end. Returns an exit code.
  int train(Progress from) {
    build_model(recipe_.stages.front());
    ProgressLine progress(recipe_.total_steps(), isatty(2) != 0);
    int64_t stage_start = 0;
    for (size_t i = 0; i < recipe_.stages.size(); ++i) {
      const StageSpec& spec = recipe_.stages[i];
      const int64_t stage_end = stage_start + spec.options.steps;
      // Stages before the checkpoint's; the step decides first, so that a run resumed with more steps than
      // it had (a changed recipe) continues its last stage instead of finding it finished.
      if (stage_end < from.step || (stage_end == from.step && static_cast<int64_t>(i) < from.stage)) {
        stage_start = stage_end;
        continue;
      }
      StageComponents stage = build_stage(spec);
      if (resume_dir_) {
        // A checkpoint taken at the end of the previous stage carries no state for this stage's optimizer.
        const bool at_stage_start = from.step == stage_start;
        // ... unless the stage keeps the previous stage's optimizer, whose state the checkpoint holds.
        const bool optimizer_state = !at_stage_start || (spec.options.keep_optimizer && i > 0);
        const Progress saved = load_checkpoint(*resume_dir_, *model_, optimizer_state ? stage.optimizer.get() : nullptr,
                                               at_stage_start ? nullptr : stage.algorithm.get());
        if (saved.loss_scale > 0) scaler_.emplace(LossScaler::State{saved.loss_scale, saved.loss_scale_good_steps});
        resume_dir_.reset();
      }
      const int64_t first = std::max(stage_start, from.step);
      if (&precision_at(spec, first) != &spec.precision) {  // resumed past a switch
        use_precision(precision_at(spec, first), stage);
        prepare_graph(spec, stage);
      }
      if (first == stage_start) {
        if (first == 0 && recipe_.run.eval_every > 0) evaluate(stage, 0);
        store_.event(first, "stage", spec.name + ": steps " + std::to_string(stage_start + 1) + ".." +
                                         std::to_string(stage_end));
      }
      for (int64_t step = first + 1; step <= stage_end; ++step) {
        current_step_ = step;
        for (const auto& sw : spec.precision_switches) {
          if (sw.at_step != step) continue;
          if (int code = receive_results(); code != kExitOk) return code;
          use_precision(sw.precision, stage);
          prepare_graph(spec, stage);
          store_.event(step, "precision", sw.precision.use + " from step " + std::to_string(step) + " (" +
                                              sw.precision.table + ")");
          log::info("step ", step, ": precision switches to ", sw.precision.use, " (", sw.precision.table, ")");
        }
        if (int code = train_step(spec, stage, step, step - stage_start - 1); code != kExitOk) return code;
        const bool last = step == stage_end;
        // A graphed step's results arrive during the next step: the store gets them before an evaluation, a
        // checkpoint or a stop (receive_results() with nothing pending does nothing).
        if (last || (recipe_.run.eval_every > 0 && step % recipe_.run.eval_every == 0)) {
          if (int code = receive_results(); code != kExitOk) return code;
          evaluate(stage, step);
        }
        const bool interrupted = dp_ ? interrupted_ : g_signal != 0;  // data parallel: any rank's signal stops all
        const bool checkpoint = last || interrupted ||
                                (recipe_.run.checkpoint_every > 0 && step % recipe_.run.checkpoint_every == 0);
        if (checkpoint) {
          if (int code = receive_results(); code != kExitOk) return code;
        }
        if (lead_ && checkpoint) {
          const int64_t next_stage = last ? static_cast<int64_t>(i) + 1 : static_cast<int64_t>(i);
          // The store first: a crash between the two then leaves rows past the newest checkpoint (dropped
          // on resume), never a checkpoint past the store's rows (those steps' rows would be lost).
          store_.event(step, "checkpoint", "checkpoints/step-" + std::to_string(step));
          store_.flush();
          last_flush_ = store_.wall();
          Progress progress{last ? next_stage : static_cast<int64_t>(i), step, store_.wall()};
          if (scaler_) {
            progress.loss_scale = scaler_->state().scale;
            progress.loss_scale_good_steps = scaler_->state().good_steps;
          }
          save_checkpoint(run_dir_, progress, *model_,
                          *stage.optimizer, *stage.algorithm, recipe_.run.keep_checkpoints);
        } else if (store_.wall() - last_flush_ > recipe_.run.flush_seconds) {
          store_.flush();
          last_flush_ = store_.wall();
        }
        if (lead_) progress.update(step, last_loss_, spec.name);
        if (interrupted) {
          progress.finish();
          store_.event(step, "interrupted", std::string("signal ") + std::to_string(g_signal.load()));
          return kExitInterrupted;
        }
      }
      if (lead_) {
        for (auto& analyzer : stage.analyzers) analyzer->on_end(stage_end);
      }
      stage_start = stage_end;
    }
    progress.finish();
    return kExitOk;
  }

  void resume_from(const std::string& checkpoint_dir) { resume_dir_ = checkpoint_dir; }
  /// The step being trained (for error reports).
  int64_t current_step() const { return current_step_; }

 private:
  Context context() const {
    Context c;
    c.seed = static_cast<uint64_t>(recipe_.run.seed);
    c.device = device_;
    c.task_shape = task_shape_;
    c.model = model_.get();
    return c;
  }

  void build_model(const StageSpec& first) {
    // The model is sized from the first stage's task; later stages must keep that shape.
    Context c = context();
    c.recorder = &store_.recorder(first.task.use);
    first_task_ = registry_.create<Task>(first.task.use, first.task.values, c);
    task_shape_ = first_task_->shape();
    c.task_shape = task_shape_;
    torch::manual_seed(recipe_.run.seed);
    model_ = registry_.create<Model>(recipe_.model.use, recipe_.model.values, c);
    model_->to(device_);
    if (dp_) {
      // Seeded alike, so equal already; rank 0's copy makes it so whatever a model's constructor does.
      std::vector<at::Tensor> state = model_->parameters();
      for (const auto& b : model_->buffers()) state.push_back(b);
      torch::NoGradGuard no_grad;
      dp_->broadcast(state);
    }
    int64_t count = 0;
    for (const auto& p : model_->parameters()) count += p.numel();
    log::info("model ", recipe_.model.use, ": ", count, " parameters on ", device_.str());
    store_.attribute("parameters", std::to_string(count));
  }

  StageComponents build_stage(const StageSpec& spec) {
    StageComponents s;
    Context c = context();
    c.recorder = &store_.recorder(spec.task.use);
    s.task = &spec == &recipe_.stages.front() && first_task_ ? std::move(first_task_)
                                                            : registry_.create<Task>(spec.task.use, spec.task.values, c);
    const TaskShape shape = s.task->shape();
    if (shape.vocab_size != task_shape_.vocab_size || shape.num_classes != task_shape_.num_classes) {
      throw std::runtime_error("stage '" + spec.name + "': task '" + spec.task.use + "' has vocabulary " +
                               std::to_string(shape.vocab_size) + " and " + std::to_string(shape.num_classes) +
                               " classes, but the model was built for " + std::to_string(task_shape_.vocab_size) +
                               " and " + std::to_string(task_shape_.num_classes));
    }
    c.task = s.task.get();
    use_precision(spec.precision, s);
    c.recorder = &store_.recorder(spec.optimizer.use);
    c.group_values = spec.optimizer.group_values();
    const std::string optimizer = spec.optimizer.use + " " + to_toml(values_list(spec.optimizer.values));
    if (spec.options.keep_optimizer && previous_optimizer_ && previous_optimizer_spec_ == optimizer) {
      s.optimizer = previous_optimizer_;  // an in-situ change: moments and step count carry on
      log::info("stage ", spec.name, ": keeps the previous stage's ", spec.optimizer.use, " optimizer and its state");
    } else {
      if (spec.options.keep_optimizer && previous_optimizer_) {
        throw std::runtime_error("stage '" + spec.name + "': keep_optimizer needs the same [optimizer] as the previous "
                                 "stage");  // checked when the recipe is read; kept as a guard
      }
      s.optimizer = registry_.create<Optimizer>(spec.optimizer.use, spec.optimizer.values, c);
    }
    previous_optimizer_ = s.optimizer;
    previous_optimizer_spec_ = optimizer;
    c.group_values.clear();
    c.optimizer = s.optimizer.get();
    c.recorder = &store_.recorder(spec.algorithm.use);
    s.algorithm = registry_.create<Algorithm>(spec.algorithm.use, spec.algorithm.values, c);
    for (const auto& a : spec.analyzers) {
      c.recorder = &store_.recorder(a.use);
      s.analyzers.push_back(registry_.create<Analyzer>(a.use, a.values, c));
    }
    params_ = model_->parameters();
    prepare_graph(spec, s);
    return s;
  }

  /// Builds `precision` as the stage's scheme and applies it to the model, unless the model already runs
  /// under the same scheme (say, the previous stage's).
  void use_precision(const ComponentSpec& precision, StageComponents& s) {
    Context c = context();
    c.task = s.task.get();
    c.recorder = &store_.recorder(precision.use);
    c.group_values = precision.group_values();
    s.precision = registry_.create<Precision>(precision.use, precision.values, c);
    std::string key = precision.use + " " + to_toml(values_list(precision.values));
    for (const auto& [group, values] : precision.group_overrides) key += " " + group + ":" + to_toml(values_list(values));
    if (applied_precision_ != key) {
      clear_layer_kernels(*model_);  // the previous scheme's layer kernels go; the new scheme sets its own
      s.precision->apply(*model_);
      applied_precision_ = key;
    }
  }

  /// The stage's scheme at global step `step`: its [precision], or the last [[precision.switch]] at or before it.
  const ComponentSpec& precision_at(const StageSpec& spec, int64_t step) const {
    const ComponentSpec* out = &spec.precision;
    for (const auto& sw : spec.precision_switches) {
      if (sw.at_step <= step) out = &sw.precision;
    }
    return *out;
  }

  /// run.cuda_graph: the stage's step is captured afresh (after a switch of scheme too).
  void prepare_graph(const StageSpec& spec, StageComponents& s) {
    set_cuda_graph_active(false);
    graph_.reset();
    graph_warmups_ = 0;
    if (recipe_.run.cuda_graph) {
      if (const std::string obstacle = graph_obstacle(spec, s); !obstacle.empty()) {
        log::warn("run.cuda_graph: stage ", spec.name, " trains eagerly: ", obstacle);
      } else {
        graph_ = std::make_unique<StepGraph>();
      }
    }
  }

  /// The step's device work: forward and backward of this rank's micro-batches, with their weighted loss and
  /// metrics summed (tensors stay on the device; read them with read_sums).
  struct StepSums {
    at::Tensor loss;                                     ///< float64, on the device
    std::vector<std::pair<std::string, at::Tensor>> tensor_metrics;
    std::vector<std::pair<std::string, double>> host_metrics;
    double weight = 0;
  };
  StepSums forward_backward(const StageSpec& spec, StageComponents& s, int64_t step) {
    // Data parallel: the step's batch is cut into world_size x grad_accum micro-batches and each rank takes
    // grad_accum consecutive ones, so that the summed gradient is the one process's with the same batch.
    const int local_count = static_cast<int>(spec.options.grad_accum);
    const int world = dp_ ? dp_->info().world_size : 1;
    const int first_micro = dp_ ? dp_->info().rank * local_count : 0;
    const int micro_count = local_count * world;
    const c10::ScalarType cast = autocast_dtype(spec.options.autocast);
    const double scale = cast == c10::kHalf ? scaler_->scale() : 1.0;
    StepSums sums;
    auto add = [](auto& list, const std::string& name, auto value) {
      auto it = std::find_if(list.begin(), list.end(), [&](auto& m) { return m.first == name; });
      if (it == list.end()) list.emplace_back(name, value);
      else it->second = it->second + value;
    };
    for (int micro = first_micro; micro < first_micro + local_count; ++micro) {
      StepOutput out;
      {
        AutocastScope autocast(device_.type(), cast);  // the forward only; backward runs outside, as in PyTorch
        out = s.algorithm->loss(step, micro, micro_count);
      }
      const double weight = out.weight > 0 ? out.weight : 1.0 / micro_count;
      (out.loss * ((micro_count == 1 ? 1.0 : weight) * scale)).backward();
      auto weighted = out.loss.detach().to(c10::kDouble) * weight;
      sums.loss = sums.loss.defined() ? sums.loss + weighted : weighted;
      sums.weight += weight;
      for (auto& [name, value] : out.metrics) add(sums.host_metrics, name, value * weight);
      for (auto& [name, value] : out.tensor_metrics) add(sums.tensor_metrics, name, value.detach().to(c10::kDouble) * weight);
    }
    return sums;
  }

  /// A step's loss, its tensor metrics and `extra` (when defined) in one float64 device tensor: one transfer.
  static at::Tensor gathered(const StepSums& sums, const at::Tensor& extra = {}) {
    std::vector<at::Tensor> values{sums.loss.reshape({1})};
    for (const auto& m : sums.tensor_metrics) values.push_back(m.second.reshape({1}));
    if (extra.defined()) values.push_back(extra.to(c10::kDouble).reshape({1}));
    return torch::cat(values);
  }

  /// The metrics of `sums`, the tensor ones read from `v` (gathered()'s layout).
  static std::vector<std::pair<std::string, double>> metrics_of(const StepSums& sums, const double* v) {
    std::vector<std::pair<std::string, double>> metrics = sums.host_metrics;
    for (size_t k = 0; k < sums.tensor_metrics.size(); ++k) metrics.emplace_back(sums.tensor_metrics[k].first, v[k + 1]);
    return metrics;
  }

  /// Host values of a step's loss and metrics (the eager step's only synchronization with the device).
  std::pair<double, std::vector<std::pair<std::string, double>>> read_sums(const StepSums& sums) {
    const auto host = gathered(sums).cpu();
    return {host.const_data_ptr<double>()[0], metrics_of(sums, host.const_data_ptr<double>())};
  }

  /// Total gradient L2 norm (a device tensor), clipped to `clip` when > 0, as torch.nn.utils.clip_grad_norm_
  /// does (foreach kernels: a few launches for all gradients, not two per parameter) and with no host
  /// synchronization (the captured step uses it as it is, the eager one reads it).
  at::Tensor clip_on_device(double clip) {
    std::vector<at::Tensor> grads;
    for (auto& p : params_) {
      if (p.grad().defined()) grads.push_back(p.grad());
    }
    if (grads.empty()) return torch::zeros({}, torch::TensorOptions().device(device_));
    auto norms = at::_foreach_norm(grads, 2);
    for (auto& n : norms) n = n.to(c10::kFloat);
    auto total = torch::stack(norms).norm(2);
    if (clip > 0) at::_foreach_mul_(grads, (clip / (total + 1e-6)).clamp_max(1.0));
    return total;
  }

  /// Why this stage's step cannot be a CUDA graph ("" when it can).
  std::string graph_obstacle(const StageSpec& spec, const StageComponents& s) const {
    if (!device_.is_cuda()) return "the run is not on a CUDA device";
    if (dp_) return "data parallel runs reduce gradients through the host";
    if (spec.options.autocast == "fp16") return "fp16 loss scaling reads the gradients on the host";
    if (!s.algorithm->capturable()) return "algorithm '" + spec.algorithm.use + "' is not capturable";
    if (!s.optimizer->capturable()) {
      return "optimizer '" + spec.optimizer.use + "' is not capturable (adamw is, with implementation = fused or auto)";
    }
    if (!s.precision->capturable()) return "precision '" + spec.precision.use + "' is not capturable";
    return "";
  }

  /// run.cuda_graph: two eager warm-up steps on the capture stream, then the step is captured once and
  /// replayed. Returns false when the step could not be captured (the caller trains eagerly).
  bool graphed_step(const StageSpec& spec, StageComponents& s, int64_t step) {
    auto body = [&] {
      for (auto& p : params_) p.mutable_grad().reset();
      graph_sums_ = forward_backward(spec, s, step);
      graph_norm_ = clip_on_device(spec.options.grad_clip);
      s.optimizer->step();
    };
    if (!graph_->captured()) {
      if (graph_warmups_ < 2) {
        ++graph_warmups_;
        graph_->warm_up(body);
      } else {
        try {
          graph_->capture(body);
          set_cuda_graph_active(true);
          log::info("run.cuda_graph: step ", step, " captured; replaying it from here");
        } catch (const std::exception& e) {
          log::warn("run.cuda_graph: the step could not be captured (", e.what(), "); training eagerly");
          graph_.reset();
          for (auto& p : params_) p.mutable_grad().reset();
          return false;
        }
      }
    }
    if (graph_->captured()) graph_->replay();
    return true;
  }

  /// A graphed step's results on their way to the host. The next step is launched before they are read, so that
  /// the host's per-step work (batch, learning rate, store) overlaps the device's instead of waiting for it.
  struct PendingStep {
    int64_t step = 0;
    bool record = false;
    double lr = 0;
    StepSums sums;
    at::Tensor values;  // pinned host memory: gathered(sums, gradient norm)
    std::shared_ptr<c10::Event> copied;
  };

  /// Starts the copy of the graphed step's results to the host.
  void send_results(int64_t step, bool record, double lr) {
    const auto on_device = gathered(graph_sums_, graph_norm_);
    PendingStep p{step, record, lr, graph_sums_,
                  at::empty(on_device.sizes(), on_device.options().device(c10::kCPU).pinned_memory(true)),
                  std::make_shared<c10::Event>(device_.type())};
    p.values.copy_(on_device, /*non_blocking=*/true);
    p.copied->record(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
    pending_.push_back(std::move(p));
  }

  /// Reads and records the pending steps' results, all but the newest `keep`. Returns an exit code.
  int receive_results(size_t keep = 0) {
    while (pending_.size() > keep) {
      const PendingStep p = std::move(pending_.front());
      pending_.pop_front();
      p.copied->synchronize();
      const double* v = p.values.const_data_ptr<double>();
      if (diverged(p.step, v[0])) {
        pending_.clear();
        return kExitDiverged;
      }
      if (p.record) record_metrics(p.step, v[0], p.lr, v[p.sums.tensor_metrics.size() + 1], metrics_of(p.sums, v));
    }
    return kExitOk;
  }

  /// Keeps the loss for the progress line; true (with the store told) when it is not finite.
  bool diverged(int64_t step, double loss) {
    last_loss_ = loss;
    if (std::isfinite(loss)) return false;
    store_.metric("train.loss", step, loss);
    store_.event(step, "diverged", "training loss is " + std::to_string(loss) + "; run stopped");
    log::error("step ", step, ": loss is ", loss, "; marking the run diverged");
    return true;
  }

  void record_metrics(int64_t step, double loss, double lr, double grad_norm,
                      const std::vector<std::pair<std::string, double>>& metrics) {
    store_.metric("train.loss", step, loss);
    store_.metric("train.lr", step, lr);
    store_.metric("train.grad_norm", step, grad_norm);
    for (const auto& [name, value] : metrics) store_.metric("train." + name, step, value);
  }

  int train_step(const StageSpec& spec, StageComponents& s, int64_t step, int64_t stage_step) {
    s.precision->on_step(step);
    s.optimizer->set_lr_factor(spec.options.lr_factor(stage_step));
    s.algorithm->prepare(step);
    const bool scaled = spec.options.autocast == "fp16";  // fp16's narrow range needs loss scaling; bf16's does not
    if (scaled && !scaler_) scaler_.emplace();
    const bool record = step % recipe_.run.log_every == 0;
    if (graph_ && graphed_step(spec, s, step)) {
      send_results(step, record, s.optimizer->lr());
      return receive_results(/*keep=*/1);  // the step before this one
    }
    if (int code = receive_results(); code != kExitOk) return code;  // a capture that failed after warm-up steps
    for (auto& p : params_) p.mutable_grad().reset();
    const StepSums sums = forward_backward(spec, s, step);
    auto [loss, metrics] = read_sums(sums);
    const double metric_weight = sums.weight;
    if (dp_) {
      const int world = dp_->info().world_size;
      // The metrics' names hashed to 20 bits: every rank has the same names iff (sum h)^2 = world * sum h^2.
      std::string names;
      for (const auto& m : metrics) names += m.first + "\n";
      const double h = static_cast<double>(std::hash<std::string>{}(names) & 0xFFFFF);
      std::vector<double> shared{loss, g_signal != 0 ? 1.0 : 0.0, h, h * h};
      dp_->reduce_step(shared, params_);
      loss = shared[0];  // every rank sees the whole batch's loss, so they agree on divergence
      interrupted_ = shared[1] > 0;
      if (shared[2] * shared[2] == world * shared[3]) {
        std::vector<double> values;
        for (const auto& m : metrics) values.push_back(m.second);
        if (!values.empty()) dp_->reduce_step(values, {});  // the whole batch's weighted means
        for (size_t k = 0; k < values.size(); ++k) metrics[k].second = values[k];
      } else {
        // Ranks name different metrics this step (say, one had an empty micro-batch): record rank 0's
        // share, its micro-batches' weighted mean.
        for (auto& m : metrics) m.second *= metric_weight > 0 ? 1.0 / metric_weight : 0.0;
      }
    }
    if (diverged(step, loss)) return kExitDiverged;
    double grad_norm = 0;
    const double loss_scale = scaled ? scaler_->scale() : 0;
    // fp16: gradients divided by the scale; an overflow skips the step (and lowers the scale).
    const bool finite = !scaled || scaler_->unscale_and_update(params_);
    if (!finite) {
      grad_norm = std::numeric_limits<double>::infinity();
    } else if (spec.options.grad_clip > 0 || record) {
      grad_norm = clip_on_device(spec.options.grad_clip).item<double>();
    }
    if (finite) s.optimizer->step();
    if (scaled && record) store_.metric("train.loss_scale", step, loss_scale);
    if (record) record_metrics(step, loss, s.optimizer->lr(), grad_norm, metrics);
    return kExitOk;
  }

  void evaluate(StageComponents& s, int64_t step) {
    if (!lead_) return;  // data parallel: rank 0 evaluates and writes the store
    torch::NoGradGuard no_grad;
    model_->eval();
    s.algorithm->evaluate(step);
    for (auto& analyzer : s.analyzers) analyzer->on_eval(step);
    model_->train();
    store_.event(step, "eval", "");
    store_.flush();
    last_flush_ = store_.wall();
  }

  const Recipe& recipe_;
  const Registry& registry_;
  RunStore& store_;
  std::string run_dir_;
  c10::Device device_;
  DataParallel* dp_;
  bool lead_;                // rank 0 (or the only process): evaluates, checkpoints, writes the store
  bool interrupted_ = false; // data parallel: some rank got a signal this step
  std::optional<LossScaler> scaler_;  // fp16 autocast
  std::unique_ptr<StepGraph> graph_;  // run.cuda_graph, per stage; null = eager
  int graph_warmups_ = 0;
  StepSums graph_sums_;               // the captured step's outputs
  std::deque<PendingStep> pending_;   // graphed steps whose results are not read yet (at most 2)
  at::Tensor graph_norm_;
  TaskShape task_shape_;
  std::shared_ptr<Model> model_;
  std::vector<at::Tensor> params_;
  std::string applied_precision_;
  std::shared_ptr<Optimizer> previous_optimizer_;  // for stages with keep_optimizer
  std::string previous_optimizer_spec_;
  std::optional<std::string> resume_dir_;
  double last_loss_ = 0, last_flush_ = 0;
  int64_t current_step_ = 0;
  std::shared_ptr<Task> first_task_;  // built with the model, reused by the first stage
};

void set_threads(const Recipe& recipe) {
  int threads = static_cast<int>(recipe.run.threads);
  if (threads == 0) {
    // `assay run --nproc N` shares the cores among its ranks through this variable.
    const char* shared = std::getenv("ASSAY_DEFAULT_THREADS");
    threads = shared ? std::max(1, std::atoi(shared)) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  at::set_num_threads(threads);
}

void catch_signals(bool on) {
  for (int signal : {SIGINT, SIGTERM, SIGUSR1}) std::signal(signal, on ? on_signal : SIG_DFL);
}

/// The checkpoint a run starts from: with --resume its own newest, else the one --from named (already resolved to
/// a checkpoint directory), else none.
std::optional<std::string> starting_checkpoint(const RunRequest& request, const std::string& run_dir) {
  if (request.resume) return latest_checkpoint(run_dir);
  if (request.from.empty()) return std::nullopt;
  return request.from;
}

/// A data-parallel rank other than 0: trains its share of every step and writes nothing (rank 0 writes the
/// store and the checkpoints, and evaluates).
int run_other_rank(const Recipe& recipe, const Registry& registry, const RunRequest& request,
                   const std::string& run_dir, c10::Device device, const RankInfo& rank) {
  log::set_level(log::Level::warn);
  set_threads(recipe);
  try {
    Progress from;
    const std::optional<std::string> checkpoint = starting_checkpoint(request, run_dir);
    if (checkpoint) from = checkpoint_progress(*checkpoint);
    if (from.step >= recipe.total_steps()) return kExitOk;
    auto store = RunStore::discarding();
    DataParallel dp(rank, device, recipe.run.dp_bucket_mb, recipe.run.dp_timeout);
    Trainer trainer(recipe, registry, *store, run_dir, device, &dp);
    if (checkpoint) trainer.resume_from(*checkpoint);
    catch_signals(true);
    const int code = trainer.train(from);
    catch_signals(false);
    return code;
  } catch (const std::exception& e) {
    log::error("rank ", rank.rank, ": ", e.what());
    return kExitFailed;
  }
}

/// The checkpoint --from names (a run directory stands for its newest), checked; nothing when unusable (said
/// on stderr).
std::optional<std::string> start_checkpoint(const std::string& from, int64_t total_steps) {
  std::string checkpoint = from;
  if (fs::is_directory(fs::path(from) / "checkpoints")) {
    auto latest = latest_checkpoint(from);
    if (!latest) {
      std::cerr << "--from " << from << ": the run has no complete checkpoint\n";
      return std::nullopt;
    }
    checkpoint = *latest;
  }
  const std::string expected = " (expected RUN_DIR/checkpoints/step-N or a run directory)";
  if (!fs::exists(fs::path(checkpoint) / "state.pt")) {
    std::cerr << "--from " << from << ": not a checkpoint, no state.pt there" << expected << "\n";
    return std::nullopt;
  }
  Progress at;
  try {
    at = checkpoint_progress(checkpoint);
  } catch (const c10::Error& e) {
    std::cerr << "--from " << from << ": unreadable checkpoint" << expected << ": " << e.what_without_backtrace() << "\n";
    return std::nullopt;
  }
  if (at.step >= total_steps) {
    std::cerr << "--from " << checkpoint << ": the checkpoint is at step " << at.step << ", and the recipe ends at step "
              << total_steps << ": nothing to train\n";
    return std::nullopt;
  }
  return checkpoint;
}

int run_resolved(const Recipe& recipe, const Registry& registry, const RunRequest& request) {
  RankInfo rank;
  try {
    rank = rank_from_environment();
  } catch (const std::exception& e) {
    std::cerr << "data parallel: " << e.what() << "; nothing ran\n";
    return kExitBadInput;
  }
  if (request.nproc > 1 && request.in_sweep) {
    std::cerr << "--nproc: a sweep's runs are one process each\n";
    return kExitBadInput;
  }
  const bool lead = rank.rank == 0;  // the rank that writes the store, checkpoints and evaluates
  if (rank.distributed() && request.out.empty()) {
    std::cerr << "a data-parallel run needs --out RUN_DIR (every rank must name the same directory)\n";
    return kExitBadInput;
  }
  const std::string run_dir = request.out.empty() ? default_run_dir(recipe.run.name) : request.out;
  const std::string store_path = (fs::path(run_dir) / "run.h5").string();
  if (lead && !request.resume && fs::exists(store_path)) {
    std::cerr << run_dir << " already holds a run; continue it with --resume, or choose another --out\n";
    return kExitBadInput;
  }
  if (request.resume && !fs::exists(store_path)) {
    std::cerr << "--resume: " << store_path << " does not exist\n";
    return kExitBadInput;
  }
  if (request.nproc > 1) {
    RunRequest ranks = request;
    ranks.out = run_dir;
    return run_local_ranks(ranks, request.nproc);
  }
  c10::Device device(c10::kCPU);
  try {
    device = pick_device(recipe.run.device, rank.local_rank);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "; nothing ran\n";
    return kExitBadInput;
  }
  if (!lead) return run_other_rank(recipe, registry, request, run_dir, device, rank);
  fs::create_directories(run_dir);
  // One process per run directory: a second writer would overwrite the first one's flushes.
  const int lock = ::open((fs::path(run_dir) / ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    std::cerr << run_dir << " is in use by another assay process\n";
    return kExitBadInput;
  }
  struct Unlock { int fd; ~Unlock() { ::close(fd); } } unlock{lock};
  log::add_file((fs::path(run_dir) / "run.log").string());
  struct RemoveLogFile { ~RemoveLogFile() { log::remove_files(); } } remove_log_file;

  // Keep freed activation buffers in the heap: by default glibc returns them to the kernel after every
  // step and faults them back in on the next (about 200 page faults per step for a 0.5 MB activation;
  // see docs/BENCHMARKS.md).
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  set_threads(recipe);
  std::unique_ptr<RunStore> store;
  std::unique_ptr<Trainer> trainer;
  try {
    StoreHeader header;
    header.recipe_source = recipe.source;
    header.recipe_resolved = recipe.resolved(registry);
    for (const auto& o : recipe.overrides) header.overrides += (header.overrides.empty() ? "" : " ") + o;
    header.env = environment();
    header.env["device"] = device.str();
    if (rank.distributed()) header.env["world_size"] = std::to_string(rank.world_size);
    auto note = [&](const ComponentSpec& spec) {
      if (const auto* c = registry.find(spec.kind, spec.use)) {
        header.env["component." + std::string(kind_name(spec.kind)) + "." + spec.use] =
            c->plugin->version + " " + c->plugin->path;
      }
    };
    note(recipe.model);
    for (const auto& stage : recipe.stages) {
      for (const auto* spec : {&stage.task, &stage.optimizer, &stage.algorithm, &stage.precision}) note(*spec);
      for (const auto& a : stage.analyzers) note(a);
    }

    Progress from;
    std::optional<std::string> checkpoint = starting_checkpoint(request, run_dir);
    if (checkpoint) from = checkpoint_progress(*checkpoint);
    if (request.resume) {
      const std::string before = read_store_attribute(store_path, "status");
      log::info("resuming ", run_dir, " (status ", before, ") from ",
                checkpoint ? "step " + std::to_string(from.step) : std::string("the start: no checkpoint"));
      store = RunStore::resume(store_path, checkpoint ? from.step : -1, header);
      store->set_wall_offset(from.wall);
    } else {
      store = RunStore::create(store_path, header);
      if (checkpoint) {
        // --from: this run's rows start after the checkpoint's step; the other run is left as it is.
        const std::string origin = fs::absolute(*checkpoint).lexically_normal().string();
        log::info("starting from ", origin, " (step ", from.step, ")");
        store->attribute("started_from", origin);
        store->event(from.step, "started_from", origin);
      }
    }
    store->attribute("total_steps", std::to_string(recipe.total_steps()));
    log::info("run ", recipe.run.name, " -> ", store_path);
    catch_signals(true);  // SIGUSR1: Slurm's warning before the time limit (sbatch --signal)

    if (from.step >= recipe.total_steps()) {
      log::info("the run already finished all ", recipe.total_steps(), " steps");
      store->attribute("status", "done");
      store->attribute("finished", utc_now());
      store->flush();
      return kExitOk;
    }
    std::unique_ptr<DataParallel> dp;
    if (rank.distributed()) {
      dp = std::make_unique<DataParallel>(rank, device, recipe.run.dp_bucket_mb, recipe.run.dp_timeout);
      log::info("data parallel: ", rank.world_size, " ranks over ", dp->backend(), "; each step's batch is split ",
                "over them");
      store->attribute("data_parallel", dp->backend() + " x" + std::to_string(rank.world_size));
    }
    trainer = std::make_unique<Trainer>(recipe, registry, *store, run_dir, device, dp.get());
    if (checkpoint) trainer->resume_from(*checkpoint);
    const int code = trainer->train(from);
    const char* status = code == kExitOk ? "done" : code == kExitDiverged ? "diverged" : "interrupted";
    store->attribute("status", status);
    store->attribute("finished", utc_now());
    store->flush();
    catch_signals(false);
    if (code == kExitInterrupted && g_signal == SIGUSR1 && std::getenv("SLURM_JOB_ID")) {
      // Checkpointed: put this Slurm task back in the queue; when it runs again it resumes.
      const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
      const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
      const std::string job = array && task ? std::string(array) + "_" + task : std::getenv("SLURM_JOB_ID");
      log::info("SIGUSR1: checkpointed at the time limit; requeueing Slurm job ", job);
      store->event(trainer->current_step(), "requeue", "slurm job " + job);
      store->flush();
      if (std::system(("scontrol requeue " + job).c_str()) != 0) log::warn("scontrol requeue ", job, " failed");
    }
    log::info("run ", status, ": ", store_path, " (inspect with: assay inspect ", run_dir, ")");
    return code;
  } catch (const std::exception& e) {
    log::error("run failed: ", e.what());
    if (store) {
      store->event(trainer ? trainer->current_step() : 0, "error", e.what());
      store->attribute("status", "failed");
      store->attribute("finished", utc_now());
      try {
        store->flush();
      } catch (const std::exception& flush_error) {
        log::error("could not record the failure in the run store: ", flush_error.what());
      }
    }
    return kExitFailed;
  }
}

}  // namespace

int run_command(const RunRequest& request) {
  Registry registry;
  try {
    registry.load_directories(Registry::search_path(request.plugin_dirs));
  } catch (const PluginError& e) {
    log::error(e.what());
    return kExitPluginError;
  }
  Recipe recipe;
  try {
    recipe = load_recipe(request.recipe, request.overrides, registry);
  } catch (const RecipeError& e) {
    for (const auto& p : e.problems) std::cerr << p << "\n";
    std::cerr << e.problems.size() << " problem(s) in " << request.recipe << "; nothing ran\n";
    return kExitBadInput;
  }

  if (recipe.has_sweep && !request.in_sweep) {
    std::cerr << request.recipe << " defines a [sweep]: run it with `assay sweep " << request.recipe
              << "`, or one of its runs with `assay run --sweep " << request.recipe << " --index I`\n";
    return kExitBadInput;
  }
  if (request.resume && request.out.empty()) {
    std::cerr << "--resume needs --out RUN_DIR (the run to continue)\n";
    return kExitBadInput;
  }
  RunRequest resolved = request;
  if (!request.from.empty()) {
    if (auto start = start_checkpoint(request.from, recipe.total_steps())) {
      resolved.from = *start;
    } else {
      return kExitBadInput;
    }
  }
  return run_resolved(recipe, registry, resolved);
}

}  // namespace assay
