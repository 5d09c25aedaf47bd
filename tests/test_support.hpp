#pragma once
// Shared helpers for the unit tests (core/src/*_test.cpp and plugins/*/*/*_test.cpp).
#include <assay/components.hpp>

#include "registry.hpp"

#include <filesystem>
#include <map>
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

}  // namespace assay::testing
