#include "mixed_precision.hpp"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <map>
#include <stdexcept>
#include <utility>

namespace assay {

AutocastScope::AutocastScope(c10::DeviceType device, c10::ScalarType dtype)
    : device_(device), active_(dtype != c10::ScalarType::Undefined) {
  if (!active_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(device);
  previous_dtype_ = at::autocast::get_autocast_dtype(device);
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
}

c10::ScalarType autocast_dtype(const std::string& name) {
  if (name == "off") return c10::ScalarType::Undefined;
  if (name == "bf16") return c10::ScalarType::BFloat16;
  if (name == "fp16") return c10::ScalarType::Half;
  throw std::invalid_argument("autocast: expected off, bf16 or fp16, got " + name);
}

bool LossScaler::unscale_and_update(const std::vector<at::Tensor>& params) {
  // One fused kernel per (device, dtype): keyed by the device's text and the dtype.
  std::map<std::pair<std::string, c10::ScalarType>, std::vector<at::Tensor>> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads[{p.grad().device().str(), p.grad().scalar_type()}].push_back(p.grad());
  }
  bool finite = true;
  for (auto& [key, list] : grads) {
    const auto options = at::TensorOptions().dtype(at::kFloat).device(list.front().device());
    auto found_inf = at::zeros({1}, options);
    auto inv_scale = at::full({1}, 1.0 / state_.scale, options);
    at::_amp_foreach_non_finite_check_and_unscale_(list, found_inf, inv_scale);
    finite = finite && found_inf.item<float>() == 0.0f;
  }
  if (!finite) {
    state_.scale *= backoff_;
    state_.good_steps = 0;
  } else if (++state_.good_steps >= interval_) {
    state_.scale *= growth_;
    state_.good_steps = 0;
  }
  return finite;
}

}  // namespace assay
