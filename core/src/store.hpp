#pragma once
// The run store: one HDF5 file per run (layout in docs/run-store.md).
//
// Crash safety by atomic replacement: the file on disk is only ever a complete, closed HDF5 file.
// Writes are buffered in memory; flush() copies the file, appends the buffer to the copy, fsyncs it and
// renames it over the original. A writer killed at any moment leaves the last flushed file intact, and
// readers (h5py, `assay inspect`) can open it at any time without SWMR. The cost is one file copy per
// flush, which stays small because bulky state (checkpoints) lives outside the store.
#include <assay/recorder.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace assay {

struct StoreHeader {
  std::string recipe_source, recipe_resolved, overrides;
  std::map<std::string, std::string> env;  ///< /env attributes
};

class RunStore {
 public:
  /// Creates a new store (status "running"). Fails if `path` exists.
  static std::unique_ptr<RunStore> create(const std::string& path, const StoreHeader& header);
  /// Reopens a store to continue a run from `last_step`: drops metrics, series and events after it.
  static std::unique_ptr<RunStore> resume(const std::string& path, int64_t last_step, const StoreHeader& header);
  /// A store that takes every write and keeps none (flush() drops the buffer): what the ranks other than
  /// 0 of a data-parallel run write to.
  static std::unique_ptr<RunStore> discarding();
  /// Adds to a store whose writer has died (events, attributes; nothing is dropped), e.g. to record why.
  static std::unique_ptr<RunStore> append_to(const std::string& path);
  ~RunStore();

  void metric(std::string_view name, int64_t step, double value);
  void append(std::string_view group, std::string_view name, int64_t step, const at::Tensor& row);
  void describe(std::string_view group, std::string_view name, std::string_view key, std::string_view text);
  void event(int64_t step, std::string_view kind, std::string_view message);
  /// Sets a root attribute (written at the next flush).
  void attribute(std::string_view key, std::string_view value);

  /// A Recorder writing analyzer series under /analyzers/<group>/.
  Recorder& recorder(const std::string& group);

  /// Writes everything buffered (atomically, see above).
  void flush();
  /// Seconds since the run started (continued across resumes).
  double wall() const;
  void set_wall_offset(double seconds) { wall_offset_ = seconds; }
  const std::string& path() const { return path_; }  ///< empty for a discarding store

 private:
  struct Series;
  struct Event { int64_t step; std::string kind, message; };
  explicit RunStore(std::string path);
  std::string path_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Series>> pending_;  ///< rows since the last flush, per series
  std::vector<Event> events_;
  std::map<std::string, std::string> root_attributes_;
  std::map<std::string, std::map<std::string, std::string>> dataset_attributes_;
  std::map<std::string, std::unique_ptr<Recorder>> recorders_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double wall_offset_ = 0;
};

/// Human-readable summary of a store: status, recipe name, last metrics, series, events.
std::string inspect_store(const std::string& path, int max_events);
/// What `assay status` shows of a run.
struct StoreSummary {
  std::string status;
  int64_t last_step = 0;    ///< of train.loss
  int64_t total_steps = 0;  ///< root attribute total_steps
  std::string error;        ///< message of the last "error" or "diverged" event
};
StoreSummary summarize_store(const std::string& path);

/// Root attribute of a store ("" if absent).
std::string read_store_attribute(const std::string& path, const std::string& key);

}  // namespace assay
