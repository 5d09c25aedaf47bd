#pragma once
// Mixed precision for a stage (`autocast` in [run] / [[stages]]): LibTorch's autocast around the
// algorithm's forward, and dynamic loss scaling for fp16 (what torch.autocast and torch.amp.GradScaler do
// in Python). Precision plugins compose with it: autocast only re-types the ops it lists (matmuls,
// convolutions, ...); a plugin's own kernels see whatever dtype reaches them.
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace assay {

/// Autocast to `dtype` on `device` for its scope, as `with torch.autocast(device, dtype)` (nesting kept,
/// the cast cache cleared when the outermost scope ends). `dtype` = Undefined: does nothing.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, c10::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool active_, was_enabled_;
  c10::ScalarType previous_dtype_;
};

/// "off" -> Undefined, "bf16" -> BFloat16, "fp16" -> Half.
c10::ScalarType autocast_dtype(const std::string& name);

/// What a checkpoint keeps of a LossScaler.
struct LossScaleState {
  double scale = 65536.0;
  int64_t good_steps = 0;  ///< steps in a row without inf/NaN since the last change of scale
};

/// Dynamic loss scaling (torch.amp.GradScaler's rule): the loss is multiplied by `scale` before backward;
/// unscale_and_update() divides the gradients by it and reports inf/NaN, in which case the step is skipped
/// and the scale multiplied by `backoff`; after `interval` steps in a row without, it is multiplied by
/// `growth`.
class LossScaler {
 public:
  using State = LossScaleState;
  explicit LossScaler(State state = State{}, double growth = 2.0, double backoff = 0.5, int64_t interval = 2000)
      : state_(state), growth_(growth), backoff_(backoff), interval_(interval) {}

  double scale() const { return state_.scale; }
  const State& state() const { return state_; }

  /// Divides every defined gradient of `params` by the scale (one fused kernel per device and dtype);
  /// true when all are finite. Then updates the scale: backs off after inf/NaN, grows after `interval`
  /// good steps. The caller skips the optimizer step when this returns false.
  bool unscale_and_update(const std::vector<at::Tensor>& params);

 private:
  State state_;
  double growth_, backoff_;
  int64_t interval_;
};

}  // namespace assay
