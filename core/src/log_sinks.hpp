#pragma once
// Host-only logging controls (not part of the SDK).
#include <string>

namespace assay::log {
/// Also write every line to `path` (the run directory's log), until remove_files().
void add_file(const std::string& path);
void remove_files();
/// Flushes buffered lines before the progress display redraws its line.
void before_terminal_line();
}  // namespace assay::log
