// The op table: every native op's name and its CPU and CUDA entry points, in one place.
// The binding exposes each row as `addon.ops[name](storages, layout, scalars)`; the device is
// taken from the tensors. The TypeScript side of op `x` lives in lib/ops/<family>.ts, its CPU
// kernel in native/cpu/<family>.cpp, its CUDA kernel in native/cuda/<family>.cu, its tests in
// test/ops/<family>.test.ts and its benchmark in bench/<family>.bench.ts.
#include "napi/op_table.h"

#include "cpu/augment.h"
#include "cpu/binary.h"
#include "cpu/contrastive.h"
#include "cpu/copy.h"
#include "cpu/cross_entropy.h"
#include "cpu/flash_attention.h"
#include "cpu/indexing.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
#include "cpu/optim.h"
#include "cpu/reduce.h"
#include "cpu/sinkhorn.h"
#include "cpu/softmax.h"
#include "cpu/unary.h"
#ifdef TESSERA_WITH_CUDA
#include "cuda/copy.h"
#include "cuda/binary.h"
#define TS_CUDA(fn) fn
#else
#define TS_CUDA(fn) nullptr
#endif

namespace tessera {

// clang-format off
static const OpEntry kOps[] = {
  // --- copy: creation and layout
  {"copy", cpu::copy, TS_CUDA(cuda::copy)},
  {"fill", cpu::fill, TS_CUDA(cuda::fill)},
  {"arange", cpu::arange, nullptr},
  {"rand", cpu::rand, TS_CUDA(cuda::rand)},
  {"randn", cpu::randn, TS_CUDA(cuda::randn)},

  // --- binary: broadcasting elementwise
  {"add", cpu::add, TS_CUDA(cuda::add)},
  {"sub", cpu::sub, TS_CUDA(cuda::sub)},
  {"mul", cpu::mul, TS_CUDA(cuda::mul)},
  {"div", cpu::div, TS_CUDA(cuda::div)},
  {"pow", cpu::pow, nullptr},
  {"maximum", cpu::maximum, nullptr},
  {"minimum", cpu::minimum, nullptr},
  {"eq", cpu::eq, nullptr},
  {"ne", cpu::ne, nullptr},
  {"lt", cpu::lt, nullptr},
  {"le", cpu::le, nullptr},
  {"gt", cpu::gt, nullptr},
  {"ge", cpu::ge, nullptr},
  {"where", cpu::where, nullptr},

  // --- unary: math and activations, forward and backward
  {"neg", cpu::neg, nullptr},
  {"exp", cpu::exp, nullptr},
  {"log", cpu::log, nullptr},
  {"sqrt", cpu::sqrt, nullptr},
  {"rsqrt", cpu::rsqrt, nullptr},
  {"abs", cpu::abs, nullptr},
  {"relu", cpu::relu, nullptr},
  {"gelu", cpu::gelu, nullptr},
  {"gelu_tanh", cpu::gelu_tanh, nullptr},
  {"sigmoid", cpu::sigmoid, nullptr},
  {"logsigmoid", cpu::logsigmoid, nullptr},
  {"softplus", cpu::softplus, nullptr},
  {"tanh", cpu::tanh, nullptr},
  {"clamp", cpu::clamp, nullptr},
  {"pow_scalar", cpu::pow_scalar, nullptr},
  {"affine", cpu::affine, nullptr},
  {"exp_backward", cpu::exp_backward, nullptr},
  {"log_backward", cpu::log_backward, nullptr},
  {"sqrt_backward", cpu::sqrt_backward, nullptr},
  {"rsqrt_backward", cpu::rsqrt_backward, nullptr},
  {"abs_backward", cpu::abs_backward, nullptr},
  {"relu_backward", cpu::relu_backward, nullptr},
  {"gelu_backward", cpu::gelu_backward, nullptr},
  {"gelu_tanh_backward", cpu::gelu_tanh_backward, nullptr},
  {"sigmoid_backward", cpu::sigmoid_backward, nullptr},
  {"logsigmoid_backward", cpu::logsigmoid_backward, nullptr},
  {"softplus_backward", cpu::softplus_backward, nullptr},
  {"tanh_backward", cpu::tanh_backward, nullptr},
  {"clamp_backward", cpu::clamp_backward, nullptr},
  {"pow_scalar_backward", cpu::pow_scalar_backward, nullptr},

  // --- matmul (native/cpu/matmul.cpp)
  {"matmul", cpu::matmul, nullptr},

  // --- reduce: over the middle axis of [outer, R, inner]
  {"sum", cpu::sum, nullptr},
  {"mean", cpu::mean, nullptr},
  {"amax", cpu::amax, nullptr},
  {"amin", cpu::amin, nullptr},
  {"logsumexp", cpu::logsumexp, nullptr},
  {"var", cpu::var, nullptr},

  // --- softmax, layernorm, cross_entropy (native/cpu/{softmax,layernorm,cross_entropy}.cpp)
  {"softmax", cpu::softmax, nullptr},
  {"log_softmax", cpu::log_softmax, nullptr},
  {"softmax_backward", cpu::softmax_backward, nullptr},
  {"log_softmax_backward", cpu::log_softmax_backward, nullptr},
  {"layer_norm", cpu::layer_norm, nullptr},
  {"layer_norm_backward", cpu::layer_norm_backward, nullptr},
  {"cross_entropy", cpu::cross_entropy, nullptr},
  {"cross_entropy_backward", cpu::cross_entropy_backward, nullptr},

  // --- indexing: gather, scatter_add, index_select, index_add, embedding (native/cpu/indexing.cpp)
  {"gather", cpu::gather, nullptr},
  {"scatter_add", cpu::scatter_add, nullptr},
  {"index_select", cpu::index_select, nullptr},
  {"index_add", cpu::index_add, nullptr},
  {"embedding", cpu::embedding, nullptr},
  {"embedding_backward", cpu::embedding_backward, nullptr},

  // --- optim: fused optimizer updates (native/cpu/optim.cpp)
  {"adamw_step", cpu::adamw_step, nullptr},
  {"sgd_step", cpu::sgd_step, nullptr},
  {"lion_step", cpu::lion_step, nullptr},
  {"sum_squares", cpu::sum_squares, nullptr},

  // --- flash_attention: tiled attention with online softmax (native/cpu/flash_attention.cpp)
  {"flash_attention", cpu::flash_attention, nullptr},
  {"flash_attention_backward", cpu::flash_attention_backward, nullptr},

  // --- contrastive: fused softmax/sigmoid contrastive losses (native/cpu/contrastive.cpp)
  {"contrastive_softmax", cpu::contrastive_softmax, nullptr},
  {"contrastive_softmax_backward", cpu::contrastive_softmax_backward, nullptr},
  {"contrastive_sigmoid", cpu::contrastive_sigmoid, nullptr},
  {"contrastive_sigmoid_backward", cpu::contrastive_sigmoid_backward, nullptr},

  // --- sinkhorn: log-domain Sinkhorn and OT (native/cpu/sinkhorn.cpp)
  {"sinkhorn", cpu::sinkhorn, nullptr},
  {"sinkhorn_plan", cpu::sinkhorn_plan, nullptr},
  {"sinkhorn_grad_points", cpu::sinkhorn_grad_points, nullptr},
  {"klot", cpu::klot, nullptr},
  {"klot_backward", cpu::klot_backward, nullptr},

  // --- augment: batched image augmentations, per-image parameters (native/cpu/augment.cpp)
  {"augment_resized_crop", cpu::augment_resized_crop, nullptr},
  {"augment_color_jitter", cpu::augment_color_jitter, nullptr},
  {"augment_grayscale", cpu::augment_grayscale, nullptr},
  {"augment_hflip", cpu::augment_hflip, nullptr},
};
// clang-format on

const OpEntry* op_table(size_t* count) {
  *count = sizeof(kOps) / sizeof(kOps[0]);
  return kOps;
}

}  // namespace tessera
