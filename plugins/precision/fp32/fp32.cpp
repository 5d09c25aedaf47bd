// Plain float32 everywhere: the reference every other precision scheme is compared against.
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class Fp32 : public assay::Precision {
 public:
  struct Options {
    void fields(assay::Fields&) {}
  };
  Fp32(const Options&, const assay::Context&) {}
  void apply(assay::Model& model) override { model.to(torch::kFloat); }
  bool capturable() const override { return true; }
};

}  // namespace

ASSAY_PLUGIN("fp32", "1.0.0") { plugin.add<Fp32>("fp32", "float32 parameters and computation"); }
