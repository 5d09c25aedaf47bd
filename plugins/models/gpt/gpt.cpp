// A decoder-only transformer, configurable enough for every LM setting of the papers here: GELU or
// SwiGLU MLPs, learned or rotary positions, LayerNorm (with or without bias/affine) or RMSNorm, pre- or
// post-LN, optional QK-norm, tied or untied head. Attention is LibTorch's fused scaled-dot-product
// attention; masks, position ids and a KV cache come through forward_with (components.hpp).
#include <assay/assay.hpp>
#include <assay/layers.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

struct GptOptions {
  int64_t layers = 2;
  int64_t width = 128;
  int64_t heads = 4;
  double mlp_ratio = 4.0;
  std::string activation = "gelu";
  std::string position = "learned";
  double rope_base = 10000.0;
  int64_t context = 0;
  std::string norm = "layernorm";
  bool norm_bias = true;
  bool norm_affine = true;
  double norm_eps = 1e-5;
  bool pre_ln = true;
  bool qk_norm = false;
  bool tied_head = false;
  bool bias = true;
  double dropout = 0.0;
  std::string init = "gpt2";
  double init_std = 0.02;
  void fields(assay::Fields& f) {
    f("layers", layers, "transformer blocks").range(1, 1024);
    f("width", width, "residual stream width d_model").min(1);
    f("heads", heads, "attention heads (must divide width)").min(1);
    f("mlp_ratio", mlp_ratio, "MLP hidden width / width (SwiGLU: use 8/3 to match GELU's parameter count)").min(0.01);
    f("activation", activation, "MLP nonlinearity").choices({"gelu", "swiglu", "relu"});
    f("position", position, "position encoding: learned absolute, rotary (RoPE), or none (NoPE)").choices({"learned", "rope", "none"});
    f("rope_base", rope_base, "RoPE base frequency").min(1);
    f("context", context, "positions a learned encoding covers; 0 = the task's input length").min(0);
    f("norm", norm, "normalization layer").choices({"layernorm", "rmsnorm"});
    f("norm_bias", norm_bias, "LayerNorm has a bias (ignored for rmsnorm)");
    f("norm_affine", norm_affine, "norms have a learned scale (and bias)");
    f("norm_eps", norm_eps, "epsilon of every norm").min(0);
    f("pre_ln", pre_ln, "normalize before attention/MLP (pre-LN, with a final norm); false = post-LN");
    f("qk_norm", qk_norm, "normalize queries and keys per head before attention");
    f("tied_head", tied_head, "the output head reuses the token embedding");
    f("bias", bias, "biases in the attention and MLP linear layers");
    f("dropout", dropout, "dropout on embeddings, attention weights and residual branches").range(0, 1);
    f("init", init, "gpt2: N(0, init_std), residual projections / sqrt(2 layers); torch: LibTorch defaults").choices({"gpt2", "torch"});
    f("init_std", init_std, "standard deviation of the gpt2 initialization").min(0);
  }
};

// LayerNorm or RMSNorm over the last dimension. `feeds_matmul`: the output's one consumer is a matrix product, so
// under autocast the norm may return the product's input dtype (and fuse that cast; see assay::NormOptions).
assay::Norm Norm(const GptOptions& o, int64_t dim, bool feeds_matmul = false) {
  return assay::Norm(assay::NormOptions{.dim = dim, .rms = o.norm == "rmsnorm", .affine = o.norm_affine, .bias = o.norm_bias,
                                        .eps = o.norm_eps, .autocast_output = feeds_matmul});
}

// Rotates pairs (i, i + d/2) of the last dimension by position * base^(-2i/d) (GPT-NeoX layout).
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  auto halves = x.chunk(2, -1);
  return torch::cat({halves[0] * cos - halves[1] * sin, halves[1] * cos + halves[0] * sin}, -1);
}

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const GptOptions& o) : heads_(o.heads), head_dim_(o.width / o.heads), dropout_(o.dropout) {
    qkv = register_module("qkv", assay::Linear(o.width, 3 * o.width, o.bias));
    out = register_module("out", assay::Linear(o.width, o.width, o.bias));
    if (o.qk_norm) {
      q_norm = register_module("q_norm", Norm(o, head_dim_));
      k_norm = register_module("k_norm", Norm(o, head_dim_));
    }
  }

  // x [B, T, d]; rope: (cos, sin) [B, 1, T, head_dim/2] or undefined; mask as in ForwardArgs.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     bool causal, assay::KVCache* cache, size_t layer) {
    const int64_t B = x.size(0), T = x.size(1);
    // Unbound along the qkv axis of the projection's own layout, so that backward stacks dq, dk, dv straight into
    // that layout (one copy; unbinding a permuted [3, B, H, T, D] view costs a second, measured in
    // tools/bench/gpu_profile.py). q, k, v are the same strided views either way.
    auto parts = qkv->forward(x).view({B, T, 3, heads_, head_dim_}).unbind(2);
    at::Tensor q = parts[0].transpose(1, 2), k = parts[1].transpose(1, 2), v = parts[2].transpose(1, 2);
    if (q_norm) {
      q = q_norm->forward(q);
      k = k_norm->forward(k);
    }
    if (cos.defined()) {
      q = rotate(q, cos, sin);
      k = rotate(k, cos, sin);
    }
    if (cache) {
      auto& keys = cache->keys[layer];
      auto& values = cache->values[layer];
      if (!keys.defined()) {
        keys = torch::zeros({B, heads_, cache->capacity, head_dim_}, k.options());
        values = torch::zeros_like(keys);
      }
      const int64_t end = cache->length + T;
      keys.slice(2, cache->length, end).copy_(k);
      values.slice(2, cache->length, end).copy_(v);
      k = keys.slice(2, 0, end);
      v = values.slice(2, 0, end);
    }
    auto attn_mask = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
    auto y = at::scaled_dot_product_attention(q, k, v, attn_mask, is_training() ? dropout_ : 0.0, causal);
    return out->forward(y.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }

  assay::Linear qkv{nullptr}, out{nullptr};
  assay::Norm q_norm{nullptr}, k_norm{nullptr};

 private:
  int64_t heads_, head_dim_;
  double dropout_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const GptOptions& o) : activation_(o.activation) {
    const auto hidden = std::max<int64_t>(1, std::llround(o.mlp_ratio * static_cast<double>(o.width)));
    up = register_module("up", assay::Linear(o.width, hidden, o.bias));
    if (activation_ == "swiglu") {
      gate = register_module("gate", assay::Linear(o.width, hidden, o.bias));
    }
    down = register_module("down", assay::Linear(hidden, o.width, o.bias));
  }
  at::Tensor forward(const at::Tensor& x) {
    auto h = up->forward(x);
    if (activation_ == "swiglu") h = torch::silu(gate->forward(x)) * h;
    else if (activation_ == "gelu") h = torch::gelu(h);
    else h = torch::relu(h);
    return down->forward(h);
  }
  assay::Linear up{nullptr}, gate{nullptr}, down{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const GptOptions& o) : pre_ln_(o.pre_ln), dropout_(o.dropout) {
    // Pre-LN norms feed the qkv projection and the MLP's up projection (SwiGLU: two projections, whose gradients
    // must meet in float32); post-LN norms are the residual stream itself.
    norm1 = register_module("norm1", Norm(o, o.width, o.pre_ln));
    attention = register_module("attention", Attention(o));
    norm2 = register_module("norm2", Norm(o, o.width, o.pre_ln && o.activation != "swiglu"));
    mlp = register_module("mlp", Mlp(o));
  }
  at::Tensor forward(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask, bool causal,
                     assay::KVCache* cache, size_t layer) {
    auto drop = [&](const at::Tensor& t) { return torch::dropout(t, dropout_, is_training()); };
    if (pre_ln_) {
      x = x + drop(attention->forward(norm1->forward(x), cos, sin, mask, causal, cache, layer));
      return x + drop(mlp->forward(norm2->forward(x)));
    }
    x = norm1->forward(x + drop(attention->forward(x, cos, sin, mask, causal, cache, layer)));
    return norm2->forward(x + drop(mlp->forward(x)));
  }
  assay::Norm norm1{nullptr}, norm2{nullptr};
  Attention attention{nullptr};
  Mlp mlp{nullptr};

 private:
  bool pre_ln_;
  double dropout_;
};
TORCH_MODULE(Block);

class Gpt : public assay::Model {
 public:
  using Options = GptOptions;

  Gpt(const Options& options, const assay::Context& context) : options_(options) {
    const auto& shape = context.task_shape;
    if (shape.vocab_size <= 0 || shape.num_classes <= 0) throw std::invalid_argument("gpt: the task declares no vocabulary");
    if (options.width % options.heads != 0) {
      throw std::invalid_argument("gpt: width (" + std::to_string(options.width) + ") must be divisible by heads (" +
                                  std::to_string(options.heads) + ")");
    }
    if (options.position == "rope" && (options.width / options.heads) % 2 != 0) {
      throw std::invalid_argument("gpt: rope needs an even head dimension (width / heads)");
    }
    if (options.tied_head && shape.num_classes != shape.vocab_size) {
      throw std::invalid_argument("gpt: tied_head needs num_classes == vocab_size (the task has " +
                                  std::to_string(shape.num_classes) + " vs " + std::to_string(shape.vocab_size) + ")");
    }
    context_ = options.context > 0 ? options.context : shape.input_length;
    if (options.position == "learned" && context_ <= 0) {
      throw std::invalid_argument("gpt: learned positions need a context (set model.context or use a task with an input length)");
    }
    token_embedding = register_parameter("token_embedding", torch::empty({shape.vocab_size, options.width}).normal_(0, 1));
    if (options.position == "learned") {
      position_embedding = register_parameter("position_embedding", torch::empty({context_, options.width}).normal_(0, 1));
    }
    for (int64_t l = 0; l < options.layers; ++l) blocks.push_back(register_module("block" + std::to_string(l), Block(options)));
    if (options.pre_ln) final_norm = register_module("final_norm", Norm(options, options.width, /*feeds_matmul=*/true));
    if (!options.tied_head) {
      head = register_module("head", assay::Linear(options.width, shape.num_classes, false));
    }
    initialize();
  }

  at::Tensor forward(const at::Tensor& inputs) override { return forward_with(inputs, {}); }

  at::Tensor forward_with(const at::Tensor& inputs, const assay::ForwardArgs& args) override {
    auto x = run_blocks(inputs, args, {}, nullptr);
    if (final_norm) x = final_norm->forward(x);
    return options_.tied_head ? torch::matmul(x, token_embedding.t()) : head->forward(x);
  }

  std::vector<at::Tensor> hidden_states(const at::Tensor& inputs, const std::vector<int64_t>& layers) override {
    auto absolute = layers;
    for (auto& l : absolute) {
      if (l < -options_.layers - 1 || l > options_.layers) {
        throw std::invalid_argument("gpt: hidden_states layer " + std::to_string(l) + " outside " +
                                    std::to_string(-options_.layers - 1) + ".." + std::to_string(options_.layers));
      }
      if (l < 0) l += options_.layers + 1;
    }
    std::vector<at::Tensor> states(layers.size());
    run_blocks(inputs, {}, absolute, &states);
    return states;
  }

  std::vector<assay::ParamGroup> param_groups() override {
    assay::ParamGroup embedding{"embedding", {token_embedding}}, qkv{"qkv", {}}, attention_out{"attention_out", {}},
        mlp{"mlp", {}}, norms{"norms", {}}, out{"head", {}};
    if (position_embedding.defined()) embedding.params.push_back(position_embedding);
    for (auto& block : blocks) {
      for (auto& p : block->attention->qkv->parameters()) qkv.params.push_back(p);
      for (auto& p : block->attention->out->parameters()) attention_out.params.push_back(p);
      for (auto& p : block->mlp->parameters()) mlp.params.push_back(p);
      for (auto* norm : {&block->norm1, &block->norm2, &block->attention->q_norm, &block->attention->k_norm}) {
        if (*norm) for (auto& p : (*norm)->parameters()) norms.params.push_back(p);
      }
    }
    if (final_norm) for (auto& p : final_norm->parameters()) norms.params.push_back(p);
    if (head) out.params.push_back(head->weight);
    return {embedding, qkv, attention_out, mlp, norms, out};
  }

  at::Tensor token_embedding, position_embedding;
  assay::Linear head{nullptr};  // untied head (MX-quantizable); the tied head multiplies by token_embedding
  std::vector<Block> blocks;
  assay::Norm final_norm{nullptr};

 private:
  // Embeds `inputs` and runs every block; fills (*states)[i] with the stream after layers[i] when asked.
  at::Tensor run_blocks(const at::Tensor& inputs, const assay::ForwardArgs& args, const std::vector<int64_t>& layers,
                        std::vector<at::Tensor>* states) {
    TORCH_CHECK(inputs.dim() == 2, "gpt: inputs must be token ids [batch, time], got ", inputs.sizes());
    const int64_t B = inputs.size(0), T = inputs.size(1);
    auto* cache = args.cache;
    const int64_t offset = cache ? cache->length : 0;
    if (cache) {
      if (cache->keys.empty()) {
        cache->keys.resize(blocks.size());
        cache->values.resize(blocks.size());
      }
      TORCH_CHECK(cache->keys.size() == blocks.size(), "gpt: the KV cache holds ", cache->keys.size(), " layers, the model has ", blocks.size());
      TORCH_CHECK(offset + T <= cache->capacity, "gpt: the KV cache holds ", cache->capacity, " positions; ", offset + T, " needed");
    }
    auto positions = args.position_ids.defined()
                         ? args.position_ids
                         : torch::arange(offset, offset + T, inputs.options()).unsqueeze(0).expand({B, T});
    auto x = token_embedding.index_select(0, inputs.reshape({-1})).view({B, T, -1});
    at::Tensor cos, sin;
    if (options_.position == "learned") {
      // Without explicit positions the last one is known here; explicit ones cost a device sync.
      const auto last = args.position_ids.defined() ? positions.max().item<int64_t>() : offset + T - 1;
      TORCH_CHECK(last < context_, "gpt: position ", last, " is beyond the learned position embedding (context ", context_, ")");
      x = x + position_embedding.index_select(0, positions.reshape({-1})).view({B, T, -1});
    } else if (options_.position == "rope") {
      const int64_t half = options_.width / options_.heads / 2;
      auto inverse = torch::pow(options_.rope_base, -torch::arange(half, x.options()) / static_cast<double>(half));
      auto angles = (positions.to(x.scalar_type()).unsqueeze(-1) * inverse).unsqueeze(1);  // [B, 1, T, half]
      cos = angles.cos();
      sin = angles.sin();
    }
    // SDPA's is_causal aligns the mask top-left, right only without cached positions; a cached prefix
    // with several new tokens gets an explicit bottom-right causal mask.
    at::Tensor mask = args.attention_mask;
    bool causal = false;
    if (!mask.defined() && T > 1) {
      if (offset == 0) causal = true;
      else mask = torch::ones({T, offset + T}, inputs.options().dtype(torch::kBool)).tril(offset);
    }
    x = torch::dropout(x, options_.dropout, is_training());
    auto record = [&](int64_t layer, const at::Tensor& state) {
      for (size_t i = 0; i < layers.size(); ++i) if (layers[i] == layer) (*states)[i] = state;
    };
    if (states) record(0, x);
    for (size_t l = 0; l < blocks.size(); ++l) {
      x = blocks[l]->forward(x, cos, sin, mask, causal, cache, l);
      if (states) record(static_cast<int64_t>(l) + 1, x);
    }
    if (cache) cache->length += T;
    return x;
  }

  void initialize() {
    torch::NoGradGuard no_grad;
    if (options_.init != "gpt2") return;  // "torch": the module defaults, embeddings N(0, 1)
    const double std = options_.init_std, residual_std = std / std::sqrt(2.0 * static_cast<double>(options_.layers));
    token_embedding.normal_(0, std);
    if (position_embedding.defined()) position_embedding.normal_(0, std);
    if (head) head->weight.normal_(0, std);
    for (auto& block : blocks) {
      for (auto* linear : {&block->attention->qkv, &block->attention->out, &block->mlp->up, &block->mlp->gate, &block->mlp->down}) {
        if (!*linear) continue;
        const bool residual = linear == &block->attention->out || linear == &block->mlp->down;
        (*linear)->weight.normal_(0, residual ? residual_std : std);
        if ((*linear)->bias.defined()) (*linear)->bias.zero_();
      }
    }
  }

  Options options_;
  int64_t context_ = 0;
};

}  // namespace

ASSAY_PLUGIN("gpt", "1.0.0") {
  plugin.add<Gpt>("gpt", "decoder-only transformer (GELU/SwiGLU, learned/RoPE positions, LayerNorm/RMSNorm, KV cache)");
}
