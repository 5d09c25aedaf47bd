#pragma once
namespace assay {
/// Parses the command line and runs the command; returns the process exit code.
int cli_main(int argc, char** argv);
}  // namespace assay
