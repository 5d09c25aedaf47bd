#pragma once
// The CLI's commands, behind a LibTorch-free interface (cli.cpp only parses arguments).
#include <cstdint>
#include <string>
#include <vector>

namespace assay {

/// Exit codes scripts can rely on.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       ///< the run raised an error (status "failed")
  kExitBadInput = 2,     ///< invalid recipe, arguments or paths; nothing ran
  kExitDiverged = 3,     ///< loss became NaN/Inf (status "diverged")
  kExitPluginError = 4,  ///< a plugin could not be loaded (version mismatch, duplicate name)
  kExitInterrupted = 130 ///< SIGINT/SIGTERM: checkpointed, status "interrupted"; continue with --resume
};

struct RunRequest {
  std::string recipe;
  std::vector<std::string> overrides;
  std::string out;                       ///< run directory; default runs/<name>-<date>-<time>
  bool resume = false;
  /// --from: start a new run from this checkpoint of another run (a checkpoints/step-N directory, or a run
  /// directory for its newest checkpoint): weights, optimizer and algorithm state, loss scale and step.
  std::string from;
  std::vector<std::string> plugin_dirs;  ///< --plugins
  bool in_sweep = false;                 ///< one run of a [sweep] recipe
  int nproc = 1;                         ///< data-parallel processes to start on this host (--nproc)
};

struct SweepRequest {
  std::string recipe;
  std::vector<std::string> overrides;
  std::string out;                       ///< sweep directory; default runs/<name>-sweep
  int jobs = 1;
  std::string launcher = "local";
  bool dry_run = false;
  std::vector<std::string> plugin_dirs;
  std::vector<std::string> slurm_args;   ///< extra #SBATCH options, e.g. --time=01:00:00
  int signal_seconds = 120;              ///< SIGUSR1 this long before the time limit: checkpoint + requeue
  bool wait = false;                     ///< slurm: wait for the array to finish, then print its status
};

/// `assay sweep`: validates every run, then runs them (skipping finished ones, resuming interrupted ones).
int sweep_command(const SweepRequest& request);
/// `assay run --sweep RECIPE --index I`: run I of a sweep, in <sweep dir>/<run id>.
int sweep_index_command(const RunRequest& request, int64_t index);
/// `assay status DIR`: per-run status and progress of a sweep.
int status_command(const std::string& sweep_dir);

int run_command(const RunRequest& request);
/// `assay run --nproc N` (request.out set): starts N ranks of the run with torchrun's environment, waits
/// for them, stops them all when one fails; returns rank 0's exit code (or the failing rank's).
int run_local_ranks(const RunRequest& request, int nproc);
int validate_command(const std::string& recipe, const std::vector<std::string>& overrides,
                     const std::vector<std::string>& plugin_dirs);
int plugins_command(const std::string& filter, const std::vector<std::string>& plugin_dirs);
int inspect_command(const std::string& path, int max_events);
/// Runs the Python analysis package (python3 -m assay_analysis report ...); returns its exit code.
int report_command(const std::string& path, const std::string& output, int watch_seconds);
/// `assay analyze NAME DIR [options]`: a cross-run analysis of the Python package
/// (python3 -m assay_analysis analyze NAME ...); `args` is everything after `analyze`, passed on as is. The
/// package knows the analyses: an unknown NAME is an error listing them (exit 2). Returns its exit code.
int analyze_command(const std::vector<std::string>& args);
struct MxRequest {
  std::string file;                  ///< HDF5 file
  std::string dataset;               ///< path inside it; empty: the file's only float32/float64 dataset
  std::vector<std::string> formats;  ///< format names or "all"; empty: all
  int64_t axis = -1;                 ///< blocks run along this axis (negative counts from the end)
  int64_t block_size = 32;
  std::string rounding = "nearest";
  uint64_t seed = 0;                 ///< stochastic rounding
  bool json = false;                 ///< one JSON object per format and line instead of the table
};
/// `assay mx FILE.h5`: quantizes a float dataset with MX formats (assay::mx) and reports, per format, the
/// relative and max error, SQNR, flushed and clipped fractions, NaN blocks and the packed size (docs/mx.md).
/// Bad input (file, dataset, type, format, axis) prints what is available and returns kExitBadInput.
int mx_command(const MxRequest& request);
/// assay::mx's format and rounding names (for help texts; this header stays LibTorch-free).
std::vector<std::string> mx_format_names();
std::vector<std::string> mx_rounding_names();
/// "assay 0.1.0 (SDK ABI 2, LibTorch 2.11.0, CUDA available)"
std::string version_text();

}  // namespace assay
