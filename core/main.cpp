#include "src/cli.hpp"

int main(int argc, char** argv) { return assay::cli_main(argc, argv); }
