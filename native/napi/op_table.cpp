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
#include "cuda/contrastive.h"
#include "cuda/flash_attention.h"
#include "cuda/matmul.h"
#include "cuda/unary.h"
#include "cuda/reduce.h"
#include "cuda/softmax.h"
#include "cuda/layernorm.h"
#include "cuda/cross_entropy.h"
#include "cuda/indexing.h"
#include "cuda/optim.h"
#include "cuda/sinkhorn.h"
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
  {"arange", cpu::arange, TS_CUDA(cuda::arange)},
  {"rand", cpu::rand, TS_CUDA(cuda::rand)},
  {"randn", cpu::randn, TS_CUDA(cuda::randn)},

  // --- binary: broadcasting elementwise
  {"add", cpu::add, TS_CUDA(cuda::add)},
  {"sub", cpu::sub, TS_CUDA(cuda::sub)},
  {"mul", cpu::mul, TS_CUDA(cuda::mul)},
  {"div", cpu::div, TS_CUDA(cuda::div)},
  {"pow", cpu::pow, TS_CUDA(cuda::pow)},
  {"maximum", cpu::maximum, TS_CUDA(cuda::maximum)},
  {"minimum", cpu::minimum, TS_CUDA(cuda::minimum)},
  {"eq", cpu::eq, TS_CUDA(cuda::eq)},
  {"ne", cpu::ne, TS_CUDA(cuda::ne)},
  {"lt", cpu::lt, TS_CUDA(cuda::lt)},
  {"le", cpu::le, TS_CUDA(cuda::le)},
  {"gt", cpu::gt, TS_CUDA(cuda::gt)},
  {"ge", cpu::ge, TS_CUDA(cuda::ge)},
  {"where", cpu::where, TS_CUDA(cuda::where)},

  // --- unary: math and activations, forward and backward
  {"neg", cpu::neg, TS_CUDA(cuda::neg)},
  {"exp", cpu::exp, TS_CUDA(cuda::exp)},
  {"log", cpu::log, TS_CUDA(cuda::log)},
  {"sqrt", cpu::sqrt, TS_CUDA(cuda::sqrt)},
  {"rsqrt", cpu::rsqrt, TS_CUDA(cuda::rsqrt)},
  {"abs", cpu::abs, TS_CUDA(cuda::abs)},
  {"relu", cpu::relu, TS_CUDA(cuda::relu)},
  {"gelu", cpu::gelu, TS_CUDA(cuda::gelu)},
  {"gelu_tanh", cpu::gelu_tanh, TS_CUDA(cuda::gelu_tanh)},
  {"sigmoid", cpu::sigmoid, TS_CUDA(cuda::sigmoid)},
  {"logsigmoid", cpu::logsigmoid, TS_CUDA(cuda::logsigmoid)},
  {"softplus", cpu::softplus, TS_CUDA(cuda::softplus)},
  {"tanh", cpu::tanh, TS_CUDA(cuda::tanh)},
  {"clamp", cpu::clamp, TS_CUDA(cuda::clamp)},
  {"pow_scalar", cpu::pow_scalar, TS_CUDA(cuda::pow_scalar)},
  {"affine", cpu::affine, TS_CUDA(cuda::affine)},
  {"exp_backward", cpu::exp_backward, TS_CUDA(cuda::exp_backward)},
  {"log_backward", cpu::log_backward, TS_CUDA(cuda::log_backward)},
  {"sqrt_backward", cpu::sqrt_backward, TS_CUDA(cuda::sqrt_backward)},
  {"rsqrt_backward", cpu::rsqrt_backward, TS_CUDA(cuda::rsqrt_backward)},
  {"abs_backward", cpu::abs_backward, TS_CUDA(cuda::abs_backward)},
  {"relu_backward", cpu::relu_backward, TS_CUDA(cuda::relu_backward)},
  {"gelu_backward", cpu::gelu_backward, TS_CUDA(cuda::gelu_backward)},
  {"gelu_tanh_backward", cpu::gelu_tanh_backward, TS_CUDA(cuda::gelu_tanh_backward)},
  {"sigmoid_backward", cpu::sigmoid_backward, TS_CUDA(cuda::sigmoid_backward)},
  {"logsigmoid_backward", cpu::logsigmoid_backward, TS_CUDA(cuda::logsigmoid_backward)},
  {"softplus_backward", cpu::softplus_backward, TS_CUDA(cuda::softplus_backward)},
  {"tanh_backward", cpu::tanh_backward, TS_CUDA(cuda::tanh_backward)},
  {"clamp_backward", cpu::clamp_backward, TS_CUDA(cuda::clamp_backward)},
  {"pow_scalar_backward", cpu::pow_scalar_backward, TS_CUDA(cuda::pow_scalar_backward)},

  // --- matmul (native/cpu/matmul.cpp)
  {"matmul", cpu::matmul, TS_CUDA(cuda::matmul)},

  // --- reduce: over the middle axis of [outer, R, inner]
  {"sum", cpu::sum, TS_CUDA(cuda::sum)},
  {"mean", cpu::mean, TS_CUDA(cuda::mean)},
  {"amax", cpu::amax, TS_CUDA(cuda::amax)},
  {"amin", cpu::amin, TS_CUDA(cuda::amin)},
  {"logsumexp", cpu::logsumexp, TS_CUDA(cuda::logsumexp)},
  {"var", cpu::var, TS_CUDA(cuda::var)},

  // --- softmax, layernorm, cross_entropy (native/cpu/{softmax,layernorm,cross_entropy}.cpp)
  {"softmax", cpu::softmax, TS_CUDA(cuda::softmax)},
  {"log_softmax", cpu::log_softmax, TS_CUDA(cuda::log_softmax)},
  {"softmax_backward", cpu::softmax_backward, TS_CUDA(cuda::softmax_backward)},
  {"log_softmax_backward", cpu::log_softmax_backward, TS_CUDA(cuda::log_softmax_backward)},
  {"layer_norm", cpu::layer_norm, TS_CUDA(cuda::layer_norm)},
  {"layer_norm_backward", cpu::layer_norm_backward, TS_CUDA(cuda::layer_norm_backward)},
  {"cross_entropy", cpu::cross_entropy, TS_CUDA(cuda::cross_entropy)},
  {"cross_entropy_backward", cpu::cross_entropy_backward, TS_CUDA(cuda::cross_entropy_backward)},

  // --- indexing: gather, scatter_add, index_select, index_add, embedding (native/cpu/indexing.cpp)
  {"gather", cpu::gather, TS_CUDA(cuda::gather)},
  {"scatter_add", cpu::scatter_add, TS_CUDA(cuda::scatter_add)},
  {"index_select", cpu::index_select, TS_CUDA(cuda::index_select)},
  {"index_add", cpu::index_add, TS_CUDA(cuda::index_add)},
  {"embedding", cpu::embedding, TS_CUDA(cuda::embedding)},
  {"embedding_backward", cpu::embedding_backward, TS_CUDA(cuda::embedding_backward)},

  // --- optim: fused optimizer updates (native/cpu/optim.cpp)
  {"adamw_step", cpu::adamw_step, TS_CUDA(cuda::adamw_step)},
  {"sgd_step", cpu::sgd_step, TS_CUDA(cuda::sgd_step)},
  {"lion_step", cpu::lion_step, TS_CUDA(cuda::lion_step)},
  {"sum_squares", cpu::sum_squares, TS_CUDA(cuda::sum_squares)},

  // --- flash_attention: tiled attention with online softmax (native/cpu/flash_attention.cpp)
  {"flash_attention", cpu::flash_attention, TS_CUDA(cuda::flash_attention)},
  {"flash_attention_backward", cpu::flash_attention_backward, TS_CUDA(cuda::flash_attention_backward)},

  // --- contrastive: fused softmax/sigmoid contrastive losses (native/cpu/contrastive.cpp)
  {"contrastive_softmax", cpu::contrastive_softmax, TS_CUDA(cuda::contrastive_softmax)},
  {"contrastive_softmax_backward", cpu::contrastive_softmax_backward, TS_CUDA(cuda::contrastive_softmax_backward)},
  {"contrastive_sigmoid", cpu::contrastive_sigmoid, TS_CUDA(cuda::contrastive_sigmoid)},
  {"contrastive_sigmoid_backward", cpu::contrastive_sigmoid_backward, TS_CUDA(cuda::contrastive_sigmoid_backward)},

  // --- sinkhorn: log-domain Sinkhorn and OT (native/cpu/sinkhorn.cpp)
  {"sinkhorn", cpu::sinkhorn, TS_CUDA(cuda::sinkhorn)},
  {"sinkhorn_plan", cpu::sinkhorn_plan, TS_CUDA(cuda::sinkhorn_plan)},
  {"sinkhorn_grad_points", cpu::sinkhorn_grad_points, TS_CUDA(cuda::sinkhorn_grad_points)},
  {"klot", cpu::klot, TS_CUDA(cuda::klot)},
  {"klot_backward", cpu::klot_backward, TS_CUDA(cuda::klot_backward)},

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
