#pragma once
/// @file What components write into the run store (one HDF5 file per run, see docs/run-store.md).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>

namespace assay {

/// A component's handle on the run store. Writes are buffered and reach the file at the next flush
/// (every eval, checkpoint, the end of the run, and at most run.flush_seconds apart), so calling these
/// in a training loop is cheap.
class Recorder {
 public:
  virtual ~Recorder() = default;

  /// A scalar series, stored as /metrics/<name>/{step, value, wall}. Use dotted names
  /// ("eval.test.accuracy"); '/' is not allowed.
  virtual void metric(std::string_view name, int64_t step, double value) = 0;

  /// Appends one row (a tensor of any fixed shape; float32/float64/int64 kept as such, other types
  /// stored as float64) at `step` to the series /analyzers/<component>/<name>/{step, value}, where
  /// value has shape [rows, *row.shape].
  virtual void append(std::string_view name, int64_t step, const at::Tensor& row) = 0;

  /// An attribute of the series group /analyzers/<component>/<name> (axis descriptions, units, ...).
  virtual void describe(std::string_view name, std::string_view key, std::string_view text) = 0;

  /// An entry in /events: kind is a short tag ("eval", "checkpoint", "loss_spike", "diverged", ...).
  virtual void event(int64_t step, std::string_view kind, std::string_view message) = 0;
};

}  // namespace assay
