#pragma once
/// @file MX block-scaled formats (OCP Microscaling): quantize-dequantize on CPU and CUDA, bit-identical,
/// following ../shared/papers/mx-precision.md exactly (the reference library's arithmetic, float32 throughout).
///
///   auto y = assay::mx::quantize(x, {.format = assay::mx::Format::fp8_e4m3, .axis = -1});
///
/// Every function takes float32 tensors on CPU or CUDA and returns a new float32 tensor on the same device.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace assay::mx {

/// Element formats. The MX ones share one E8M0 scale per block; bf16/fp16 are elementwise emulations.
enum class Format { fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1, int8, int4, bf16, fp16 };

/// How a value between two representable ones is rounded (on the scaled mantissa t).
enum class Rounding {
  nearest,     ///< ties away from zero: sign * floor(|t| + 0.5) (the reference library's default)
  even,        ///< ties to even
  floor,       ///< toward zero
  stochastic,  ///< sign * floor(|t| + u), u in [0, 1) drawn from (seed, element index): same on every device.
               ///< u = (SplitMix64 finalizer of seed + (index + 1) * 0x9E3779B97F4A7C15) >> 40, times 2^-24;
               ///< index = the element's row-major position in the tensor
};

/// A format's parameters (the paper's table). mbits counts the sign and the implicit bit.
struct FormatInfo {
  std::string_view name;  ///< "fp8_e4m3", ...
  int ebits;              ///< exponent bits (0 for integers)
  int mbits;              ///< mantissa bits incl. sign and implicit one
  int emax;               ///< largest exponent of a normal value
  float max_norm;         ///< largest finite magnitude
  int min_exp;            ///< smallest exponent of a normal value, 2 - 2^(ebits-1) (unused for integers)
  int storage_bits;       ///< bits per element code when packed
  bool block_scaled;      ///< an MX element format (saturates); false for bf16/fp16 (overflow -> Inf)
};
const FormatInfo& info(Format format);
/// Parses "fp8_e4m3", ... (also "e4m3", "mxfp8", ... are NOT accepted: one spelling per format).
/// Throws std::invalid_argument naming the valid choices.
Format format_from_name(std::string_view name);
Rounding rounding_from_name(std::string_view name);
std::string_view rounding_name(Rounding rounding);
/// Every format name, in enum order (for option choices and help texts).
std::vector<std::string> format_names();
std::vector<std::string> rounding_names();

struct QuantizeOptions {
  Format format = Format::fp8_e4m3;
  int64_t axis = -1;                  ///< blocks run along this axis (negative counts from the end)
  int64_t block_size = 32;            ///< elements sharing one scale; the tail block is zero-padded
  Rounding rounding = Rounding::nearest;
  uint64_t seed = 0;                  ///< stochastic rounding only
};

/// MX quantize-dequantize: blocks of `block_size` along `axis` share the exponent
/// se = floor(log2(max|block|)) - emax (all-zero block: -126 - emax), clamped below at -127; se > 127 or a block
/// holding Inf/NaN gives an all-NaN block; each element becomes Q(x / 2^se) * 2^se with Q saturating.
/// For bf16/fp16 (not block formats) this is round_elementwise.
at::Tensor quantize(const at::Tensor& x, const QuantizeOptions& options);

/// quantize() written into `out` (float32, contiguous, x's shape and device, not overlapping x), as ATen's *_out
/// functions: no allocation, hence no page faults on a fresh buffer when a caller quantizes repeatedly. Returns out.
at::Tensor& quantize_out(at::Tensor& out, const at::Tensor& x, const QuantizeOptions& options);

/// Elementwise rounding to `format` with scale 1 (bf16/fp16 emulation: overflow -> +-Inf; MX element formats
/// saturate at max_norm). Inf and NaN inputs pass through.
at::Tensor round_elementwise(const at::Tensor& x, Format format, Rounding rounding = Rounding::nearest, uint64_t seed = 0);

/// floor(log2(x)) as float32 computes it (torch.log2 rounds up to k for some x just below 2^k), for x > 0
/// finite, including subnormals. The quantizers use this; exposed for tests.
int floor_log2(float x);

/// Real MX storage: one E8M0 byte per block (exponent + 127; 255 = NaN block) and `storage_bits`-bit element
/// codes (sign | exponent | mantissa, or two's complement integers) packed little-endian into bytes.
struct Packed {
  std::vector<int64_t> shape;  ///< the original tensor's shape
  QuantizeOptions options;     ///< axis normalized to be non-negative
  at::Tensor scales;           ///< uint8 [outer, blocks, inner] (CPU)
  at::Tensor codes;            ///< uint8, element i (row-major order of the original tensor) at bits [i*b, (i+1)*b)
  int64_t bytes() const { return scales.numel() + codes.numel(); }
};
/// quantize() then encode, block formats only (CPU result; the input may live on CUDA).
Packed pack(const at::Tensor& x, const QuantizeOptions& options);
/// Decodes to float32 on the CPU: exactly quantize(x, options).
at::Tensor unpack(const Packed& packed);

}  // namespace assay::mx
