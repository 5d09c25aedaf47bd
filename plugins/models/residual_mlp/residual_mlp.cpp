// The MX-precision paper's proxy student: L pre-LN residual MLP blocks on real-valued inputs,
//   x <- x + fc2(GELU(fc1(LN(x)))),  fc1: d -> r d (no bias), fc2: r d -> d (bias), LN eps 1e-5 (affine),
// mapping R^d -> R^d (no embedding, no head). Every matrix product is an assay::Linear and every
// normalization an assay::Norm, so a precision scheme (mx) reaches them through their kernels.
#include <assay/assay.hpp>
#include <assay/layers.hpp>

#include <torch/torch.h>

namespace {

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t width, int64_t hidden, double eps) {
    ln = register_module("ln", assay::Norm(assay::NormOptions{.dim = width, .rms = false, .affine = true, .bias = true, .eps = eps}));
    fc1 = register_module("fc1", assay::Linear(width, hidden, false));
    fc2 = register_module("fc2", assay::Linear(hidden, width, true));
  }
  at::Tensor forward(const at::Tensor& x) { return x + fc2->forward(torch::gelu(fc1->forward(ln->forward(x)))); }

  assay::Norm ln{nullptr};
  assay::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Block);

class ResidualMlp : public assay::Model {
 public:
  struct Options {
    int64_t width = 0;
    int64_t depth = 4;
    int64_t hidden_ratio = 4;
    double norm_eps = 1e-5;
    void fields(assay::Fields& f) {
      f("width", width, "residual width d; 0 = the task's input dimension (it must equal it: no projections)").min(0);
      f("depth", depth, "residual blocks L").range(1, 1024);
      f("hidden_ratio", hidden_ratio, "fc1 output width / d (the paper: 4)").min(1);
      f("norm_eps", norm_eps, "epsilon of each block's LayerNorm").min(0);
    }
  };

  ResidualMlp(const Options& options, const assay::Context& context) {
    const auto& shape = context.task_shape;
    if (shape.vocab_size != 0) {
      throw std::invalid_argument("residual_mlp takes real-valued inputs [B, d] (a task with vocab_size 0, such as "
                                  "teacher_student); this task has a vocabulary of " + std::to_string(shape.vocab_size));
    }
    width_ = options.width > 0 ? options.width : shape.input_length;
    if (width_ != shape.input_length || width_ != shape.num_classes) {
      throw std::invalid_argument("residual_mlp maps R^d to R^d: width (" + std::to_string(width_) +
                                  ") must equal the task's input dimension (" + std::to_string(shape.input_length) +
                                  ") and output dimension (" + std::to_string(shape.num_classes) + ")");
    }
    // LibTorch's default initialization (as torch::nn::Linear / LayerNorm), from the run's global seed.
    for (int64_t l = 0; l < options.depth; ++l) {
      blocks_.push_back(register_module("block" + std::to_string(l), Block(width_, options.hidden_ratio * width_, options.norm_eps)));
    }
  }

  at::Tensor forward(const at::Tensor& inputs) override {
    auto x = prepare(inputs);
    for (auto& block : blocks_) x = block->forward(x);
    return x;
  }

  // The residual stream [B, d] after each of `layers` (0 = the input, l = after block l, -1 = the last).
  std::vector<at::Tensor> hidden_states(const at::Tensor& inputs, const std::vector<int64_t>& requested) override {
    const auto depth = static_cast<int64_t>(blocks_.size());
    auto layers = requested;
    for (auto& l : layers) {
      if (l < -depth - 1 || l > depth) {
        throw std::invalid_argument("residual_mlp: hidden_states layer " + std::to_string(l) + " outside " +
                                    std::to_string(-depth - 1) + ".." + std::to_string(depth));
      }
      if (l < 0) l += depth + 1;
    }
    std::vector<at::Tensor> states(layers.size());
    auto x = prepare(inputs);
    for (int64_t l = 0; l <= depth; ++l) {
      if (l > 0) x = blocks_[static_cast<size_t>(l - 1)]->forward(x);
      for (size_t i = 0; i < layers.size(); ++i) {
        if (layers[i] == l) states[i] = x;
      }
    }
    return states;
  }

  // fc1: every block's fc1.weight; fc2: fc2.weight and fc2.bias; norms: LayerNorm weight and bias.
  std::vector<assay::ParamGroup> param_groups() override {
    assay::ParamGroup fc1{"fc1", {}}, fc2{"fc2", {}}, norms{"norms", {}};
    for (auto& block : blocks_) {
      for (auto& p : block->fc1->parameters()) fc1.params.push_back(p);
      for (auto& p : block->fc2->parameters()) fc2.params.push_back(p);
      for (auto& p : block->ln->parameters()) norms.params.push_back(p);
    }
    return {fc1, fc2, norms};
  }

 private:
  at::Tensor prepare(const at::Tensor& inputs) const {
    TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == width_, "residual_mlp: inputs must be [batch, ", width_, "], got ",
                inputs.sizes());
    TORCH_CHECK(inputs.is_floating_point(), "residual_mlp: inputs must be real-valued, got ", inputs.scalar_type());
    return inputs.to(blocks_.front()->fc1->weight.scalar_type());
  }

  int64_t width_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace

ASSAY_PLUGIN("residual_mlp", "1.0.0") {
  plugin.add<ResidualMlp>("residual_mlp", "pre-LN residual GELU MLP on real-valued inputs R^d -> R^d (MX-precision proxy student)");
}
