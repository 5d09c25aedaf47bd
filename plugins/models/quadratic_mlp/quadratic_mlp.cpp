// f(a, b) = sum_i (u_i[a] + v_i[b])^2 w_i: one hidden layer, quadratic activation, no biases,
// one-hot inputs. Homogeneous of degree 3 in (u, v, w) (margin-features paper).
#include <assay/assay.hpp>

#include <torch/torch.h>

namespace {

class QuadraticMlp : public assay::Model {
 public:
  struct Options {
    int64_t width = 0;
    double init_std = 0.1;
    void fields(assay::Fields& f) {
      f("width", width, "hidden neurons m; 0 = 4 * (vocab - 1), the paper's m >= 4(p-1)").min(0);
      f("init_std", init_std, "standard deviation of the normal initialization of u, v and w").min(0);
    }
  };

  QuadraticMlp(const Options& options, const assay::Context& context) {
    const auto& shape = context.task_shape;
    if (shape.input_length != 2) {
      throw std::invalid_argument("quadratic_mlp needs a task with two input tokens per example (got " +
                                  std::to_string(shape.input_length) + ")");
    }
    const int64_t m = options.width > 0 ? options.width : 4 * (shape.vocab_size - 1);
    // Neuron-major layout [m, vocab] / [m, classes]: row i is neuron i's (u_i, v_i, w_i).
    u_ = register_parameter("u", torch::randn({m, shape.vocab_size}) * options.init_std);
    v_ = register_parameter("v", torch::randn({m, shape.vocab_size}) * options.init_std);
    w_ = register_parameter("w", torch::randn({m, shape.num_classes}) * options.init_std);
  }

  at::Tensor forward(const at::Tensor& inputs) override {
    auto a = inputs.select(1, 0), b = inputs.select(1, 1);
    auto hidden = (u_.t().index_select(0, a) + v_.t().index_select(0, b)).square();  // [B, m]
    return hidden.matmul(w_);                                                        // [B, classes]
  }

  std::vector<assay::ParamGroup> param_groups() override { return {{"embedding", {u_, v_}}, {"head", {w_}}}; }
  std::vector<at::Tensor> neuron_parameters() override { return {u_, v_, w_}; }
  int homogeneity() const override { return 3; }

 private:
  at::Tensor u_, v_, w_;
};

}  // namespace

ASSAY_PLUGIN("quadratic_mlp", "1.0.0") {
  plugin.add<QuadraticMlp>("quadratic_mlp", "sum_i (u_i[a] + v_i[b])^2 w_i on one-hot pairs (degree-3 homogeneous)");
}
