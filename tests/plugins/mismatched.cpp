// A plugin whose manifest claims another SDK ABI or LibTorch version (chosen at compile time), to test
// that the host refuses it with a clear message. It must never get as far as registering components.
#include <assay/plugin.hpp>

#include <cstdlib>

extern "C" __attribute__((visibility("default"))) const assay_manifest* assay_plugin_manifest() {
  static const assay_manifest manifest{MISMATCH_SDK_ABI, "9.9.9", MISMATCH_TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI,
                                       ASSAY_COMPILER_ID, "mismatched", "0.0.1",
                                       [](assay::Plugin*) { std::abort(); }};
  return &manifest;
}
