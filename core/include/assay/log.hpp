#pragma once
/// @file Logging for plugins and host. Human-readable progress and diagnostics only: numbers a reader
/// will analyze go to the run store through assay::Recorder, not to the log.
#include <sstream>
#include <string_view>

namespace assay::log {

enum class Level { debug, info, warn, error };

/// Writes one line (to the terminal and the run's log file). Thread-safe.
void write(Level level, std::string_view message);
/// Lines below `level` are dropped.
void set_level(Level level);

namespace detail {
template <class... Args>
void concat_write(Level level, const Args&... args) {
  std::ostringstream line;
  (line << ... << args);
  write(level, line.str());
}
}  // namespace detail

/// `assay::log::info("loaded ", n, " pairs")`: the arguments are streamed into one line.
template <class... Args> void debug(const Args&... args) { detail::concat_write(Level::debug, args...); }
template <class... Args> void info(const Args&... args) { detail::concat_write(Level::info, args...); }
template <class... Args> void warn(const Args&... args) { detail::concat_write(Level::warn, args...); }
template <class... Args> void error(const Args&... args) { detail::concat_write(Level::error, args...); }

}  // namespace assay::log
