// spdlog behind assay/log.hpp. This file must not include LibTorch headers (see core/CMakeLists.txt).
#include <assay/log.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include "log_sinks.hpp"

namespace assay::log {
namespace {
spdlog::logger& logger() {
  static auto instance = [] {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto made = std::make_shared<spdlog::logger>("assay", console);
    // On a terminal, erase the progress line first (progress.cpp redraws it on its next update).
    made->set_pattern(isatty(2) ? "\033[2K\r%^[%H:%M:%S %l]%$ %v" : "[%H:%M:%S %l] %v");
    made->flush_on(spdlog::level::warn);
    return made;
  }();
  return *instance;
}
spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}
}  // namespace

void write(Level level, std::string_view message) { logger().log(to_spdlog(level), "{}", message); }
void set_level(Level level) { logger().set_level(to_spdlog(level)); }

void add_file(const std::string& path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e %l] %v");
  logger().sinks().push_back(sink);
  logger().flush_on(spdlog::level::info);
}

void remove_files() {
  auto& sinks = logger().sinks();
  sinks.erase(sinks.begin() + 1, sinks.end());
}

void before_terminal_line() { logger().flush(); }

}  // namespace assay::log
