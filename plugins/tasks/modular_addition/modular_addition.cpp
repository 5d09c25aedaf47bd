// (a + b) mod p: inputs are the two residues as tokens, the target is their sum.
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class ModularAddition : public assay::Task {
 public:
  struct Options {
    int64_t p = 31;
    double train_fraction = 1.0;
    int64_t batch_size = 0;
    void fields(assay::Fields& f) {
      f("p", p, "modulus (the paper uses a prime)").range(2, 4096);
      f("train_fraction", train_fraction, "share of all p^2 pairs used for training; 1 = the full dataset").range(0.01, 1);
      f("batch_size", batch_size, "examples per step; 0 = every training pair (full batch)").min(0);
    }
  };

  ModularAddition(const Options& options, const assay::Context& context)
      : options_(options), seed_(context.seed), device_(context.device) {
    const int64_t p = options.p;
    auto a = torch::arange(p, torch::kLong).repeat_interleave(p);
    auto b = torch::arange(p, torch::kLong).repeat({p});
    auto inputs = torch::stack({a, b}, 1);
    auto targets = (a + b) % p;
    // The split depends on the seed only, so every stage and every resume sees the same one.
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed_ ^ 0x5eedda7aULL);
    auto order = torch::randperm(p * p, generator, torch::kLong);
    const int64_t n_train = std::max<int64_t>(1, static_cast<int64_t>(std::llround(options.train_fraction * p * p)));
    auto train_index = options.train_fraction >= 1 ? torch::arange(p * p) : std::get<0>(order.slice(0, 0, n_train).sort());
    train_ = {inputs.index_select(0, train_index).to(device_), targets.index_select(0, train_index).to(device_)};
    if (n_train < p * p && options.train_fraction < 1) {
      auto test_index = std::get<0>(order.slice(0, n_train).sort());
      test_ = {inputs.index_select(0, test_index).to(device_), targets.index_select(0, test_index).to(device_)};
    }
  }

  assay::TaskShape shape() const override { return {options_.p, options_.p, 2}; }

  assay::Batch train_batch(int64_t step) override {
    const int64_t n = train_.inputs.size(0);
    if (options_.batch_size == 0 || options_.batch_size >= n) return train_;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(step));
    auto index = torch::randint(n, {options_.batch_size}, generator, torch::kLong).to(device_);
    return {train_.inputs.index_select(0, index), train_.targets.index_select(0, index)};
  }

  std::vector<std::string> eval_splits() const override {
    if (test_.inputs.defined()) return {"train", "test"};
    return {"train"};
  }

  assay::Batch eval_batch(std::string_view split) override {
    if (split == "train") return train_;
    if (split == "test" && test_.inputs.defined()) return test_;
    throw std::invalid_argument("modular_addition has no eval split '" + std::string(split) + "'");
  }

 private:
  Options options_;
  uint64_t seed_;
  c10::Device device_;
  assay::Batch train_, test_;
};

}  // namespace

ASSAY_PLUGIN("modular_addition", "1.0.0") {
  plugin.add<ModularAddition>("modular_addition", "(a + b) mod p over pairs of residues, one label per pair");
}
