// The N-API binding. It exposes:
//   Storage            owned memory on one device: new Storage(nbytes, device, zero = true), .free(),
//                      .read(byteOffset, byteLength) -> ArrayBuffer, .write(byteOffset, typedArray)
//   ops[name](storages, layout, scalars)
//                      one function per row of the op table (native/napi/op_table.cpp)
//   memoryStats(), cuda{...}, cpu{...}
// Every argument from JS is checked here before a kernel runs: a layout that would reach outside
// its storage, a freed storage, a bad dtype code, become JS Errors naming the op.
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>

#include "core/storage.h"
#include "cpu/cpu_features.h"
#include "cuda/cuda_api.h"
#include "napi/op_table.h"

namespace tessera {

namespace {

class StorageWrap : public Napi::ObjectWrap<StorageWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Storage",
                       {InstanceMethod("free", &StorageWrap::Free), InstanceMethod("read", &StorageWrap::Read),
                        InstanceMethod("write", &StorageWrap::Write),
                        InstanceAccessor("nbytes", &StorageWrap::NBytes, nullptr),
                        InstanceAccessor("device", &StorageWrap::DeviceCode, nullptr),
                        InstanceAccessor("freed", &StorageWrap::Freed, nullptr)});
  }

  explicit StorageWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "Storage: expected (nbytes: number, device: number)");
    double nbytes = info[0].As<Napi::Number>().DoubleValue();
    double dev = info[1].As<Napi::Number>().DoubleValue();
    if (!(nbytes >= 0) || nbytes != std::floor(nbytes) || nbytes > (double)kMaxAllocBytes)
      throw Napi::RangeError::New(env, "Storage: nbytes must be an integer in [0, 2^40], got " + std::to_string(nbytes));
    if (dev != 0 && dev != 1) throw Napi::RangeError::New(env, "Storage: device must be 0 (cpu) or 1 (cuda)");
    try {
      bool zero = info.Length() < 3 || !info[2].IsBoolean() || info[2].As<Napi::Boolean>().Value();
      storage_ = storage_alloc((size_t)nbytes, (Device)(int)dev, zero);
    } catch (const Error& e) {
      throw Napi::Error::New(env, e.what());
    }
    if (storage_->device == Device::CPU) {
      accounted_ = (int64_t)storage_->nbytes;
      Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
    }
  }

  ~StorageWrap() override {
    if (storage_) {
      storage_release(storage_);
      delete storage_;
    }
    // The external-memory hint is left to V8's own bookkeeping here: a finalizer must not call
    // back into the engine, and explicit free() already returned the hint.
  }

  Storage* get() const { return storage_; }

 private:
  Napi::Value Free(const Napi::CallbackInfo& info) {
    if (!storage_->freed) {
      storage_release(storage_);
      if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -accounted_);
      accounted_ = 0;
    }
    return info.Env().Undefined();
  }

  Napi::Value NBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)storage_->nbytes); }
  Napi::Value DeviceCode(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (int)storage_->device); }
  Napi::Value Freed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), storage_->freed); }

  void CheckRange(Napi::Env env, const char* what, double off, double len) {
    if (storage_->freed) throw Napi::Error::New(env, std::string(what) + ": storage has been freed (tensor disposed)");
    if (!(off >= 0) || !(len >= 0) || off != std::floor(off) || len != std::floor(len) ||
        off + len > (double)storage_->nbytes)
      throw Napi::RangeError::New(env, std::string(what) + ": byte range [" + std::to_string(off) + ", " +
                                           std::to_string(off + len) + ") is outside the storage of " +
                                           std::to_string(storage_->nbytes) + " bytes");
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "Storage.read: expected (byteOffset: number, byteLength: number)");
    double off = info[0].As<Napi::Number>().DoubleValue(), len = info[1].As<Napi::Number>().DoubleValue();
    CheckRange(env, "Storage.read", off, len);
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, (size_t)len);
    const char* src = static_cast<const char*>(storage_->data) + (size_t)off;
    try {
      if (storage_->device == Device::CPU) std::memcpy(buf.Data(), src, (size_t)len);
      else cuda::copy_to_host(buf.Data(), src, (size_t)len);
    } catch (const Error& e) {
      throw Napi::Error::New(env, e.what());
    }
    return buf;
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "Storage.write: expected (byteOffset: number, data: TypedArray)");
    double off = info[0].As<Napi::Number>().DoubleValue();
    Napi::TypedArray arr = info[1].As<Napi::TypedArray>();
    size_t len = arr.ByteLength();
    CheckRange(env, "Storage.write", off, (double)len);
    const char* src = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    char* dst = static_cast<char*>(storage_->data) + (size_t)off;
    try {
      if (storage_->device == Device::CPU) std::memcpy(dst, src, len);
      else cuda::copy_to_device(dst, src, len);
    } catch (const Error& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  Storage* storage_ = nullptr;
  int64_t accounted_ = 0;
};

Napi::FunctionReference* g_storage_ctor = nullptr;

// Layout of one tensor in the Float64Array: dtype, device, offset, ndim, shape[ndim], strides[ndim].
TensorRef parse_tensor(const char* op, size_t index, Storage* s, const double* meta, size_t meta_len, size_t& pos) {
  auto take = [&](const char* field) -> double {
    if (pos >= meta_len) fail(op, ": tensor ", index, ": layout array too short (missing ", field, ")");
    double v = meta[pos++];
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 9007199254740992.0)
      fail(op, ": tensor ", index, ": ", field, " must be a non-negative integer, got ", v);
    return v;
  };
  TensorRef t;
  t.storage = s;
  int code = (int)take("dtype");
  TS_CHECK(dtype_valid(code), op, ": tensor ", index, ": unknown dtype code ", code);
  t.dtype = (DType)code;
  int dev = (int)take("device");
  TS_CHECK(dev == 0 || dev == 1, op, ": tensor ", index, ": unknown device code ", dev);
  t.device = (Device)dev;
  t.offset = (int64_t)take("offset");
  double nd = take("ndim");
  TS_CHECK(nd <= kMaxDims, op, ": tensor ", index, ": at most ", kMaxDims, " dimensions are supported, got ", nd);
  t.ndim = (int)nd;
  for (int d = 0; d < t.ndim; ++d) t.shape[d] = (int64_t)take("shape");
  for (int d = 0; d < t.ndim; ++d) t.strides[d] = (int64_t)take("strides");

  TS_CHECK(!s->freed, op, ": tensor ", index, " (", t.describe(), ") has been disposed");
  TS_CHECK(s->device == t.device, op, ": tensor ", index, " says device ", device_name(t.device),
           " but its storage is on ", device_name(s->device));
  // Every reachable element must lie inside the storage. Computed in long double-free integer
  // arithmetic with an overflow guard: each term is < 2^53 and there are at most 8 of them.
  bool empty = false;
  for (int d = 0; d < t.ndim; ++d) empty |= t.shape[d] == 0;
  if (!empty) {
    unsigned __int128 last = (unsigned __int128)t.offset;
    for (int d = 0; d < t.ndim; ++d) last += (unsigned __int128)(t.shape[d] - 1) * (unsigned __int128)t.strides[d];
    unsigned __int128 end_bytes = (last + 1) * dtype_size(t.dtype);
    TS_CHECK(end_bytes <= s->nbytes, op, ": tensor ", index, " (", t.describe(), ", offset ", t.offset,
             ") reaches past the end of its storage of ", s->nbytes, " bytes");
  }
  return t;
}

Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const OpEntry* entry = static_cast<const OpEntry*>(info.Data());
  const char* op = entry->name;
  try {
    if (info.Length() != 3 || !info[0].IsArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray())
      fail(op, ": expected (storages: Storage[], layout: Float64Array, scalars: Float64Array)");
    Napi::Array storages = info[0].As<Napi::Array>();
    Napi::TypedArray layout_arr = info[1].As<Napi::TypedArray>();
    Napi::TypedArray scalar_arr = info[2].As<Napi::TypedArray>();
    TS_CHECK(layout_arr.TypedArrayType() == napi_float64_array && scalar_arr.TypedArrayType() == napi_float64_array,
             op, ": layout and scalars must be Float64Arrays");
    Napi::Float64Array layout = layout_arr.As<Napi::Float64Array>();
    Napi::Float64Array scalars = scalar_arr.As<Napi::Float64Array>();

    OpCall call;
    call.op = op;
    uint32_t n = storages.Length();
    TS_CHECK(n <= 16, op, ": too many tensor arguments (", n, ")");
    call.tensors.reserve(n);
    size_t pos = 0;
    for (uint32_t i = 0; i < n; ++i) {
      Napi::Value v = storages.Get(i);
      if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_storage_ctor->Value()))
        fail(op, ": tensor argument ", i, " is not a Storage");
      Storage* s = StorageWrap::Unwrap(v.As<Napi::Object>())->get();
      call.tensors.push_back(parse_tensor(op, i, s, layout.Data(), layout.ElementLength(), pos));
    }
    TS_CHECK(pos == layout.ElementLength(), op, ": layout array has ", layout.ElementLength() - pos,
             " unused entries (tensor count and layout disagree)");
    call.scalars.assign(scalars.Data(), scalars.Data() + scalars.ElementLength());

    Device dev = n ? call.tensors[0].device : Device::CPU;
    for (uint32_t i = 1; i < n; ++i)
      TS_CHECK(call.tensors[i].device == dev, op, ": all tensors must be on one device, tensor 0 is on ",
               device_name(dev), " and tensor ", i, " on ", device_name(call.tensors[i].device));
    KernelFn fn = dev == Device::CUDA ? entry->cuda : entry->cpu;
    TS_CHECK(fn != nullptr, op, ": not implemented on ", device_name(dev));
    fn(call);
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, std::string(op) + ": out of host memory");
  }
  return env.Undefined();
}

Napi::Value MemoryStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemoryStats m = memory_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hostBytes", (double)m.host_bytes);
  o.Set("hostBlocks", (double)m.host_blocks);
  o.Set("hostPeakBytes", (double)m.host_peak_bytes);
  o.Set("deviceBytes", (double)m.device_bytes);
  o.Set("deviceBlocks", (double)m.device_blocks);
  return o;
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  int n = cuda::device_count();
  o.Set("compiled", cuda::kCompiled);
  o.Set("deviceCount", n);
  Napi::Array names = Napi::Array::New(env, n);
  for (int i = 0; i < n; ++i) names.Set(i, cuda::device_name(i));
  o.Set("deviceNames", names);
  o.Set("error", n > 0 ? std::string() : cuda::runtime_error_text());
  return o;
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  try {
    cuda::synchronize();
  } catch (const Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", omp_get_max_threads());
  o.Set("simd", cpu::simd_level_name());
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setThreads: expected a number");
  double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 1024) || n != std::floor(n))
    throw Napi::RangeError::New(env, "setThreads: thread count must be an integer in [1, 1024], got " + std::to_string(n));
  omp_set_num_threads((int)n);
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function storage = StorageWrap::Init(env);
  g_storage_ctor = new Napi::FunctionReference(Napi::Persistent(storage));
  exports.Set("Storage", storage);

  Napi::Object ops = Napi::Object::New(env);
  size_t count = 0;
  const OpEntry* table = op_table(&count);
  for (size_t i = 0; i < count; ++i)
    ops.Set(table[i].name, Napi::Function::New(env, CallOp, table[i].name, const_cast<OpEntry*>(&table[i])));
  exports.Set("ops", ops);
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStatsJs));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo));
  exports.Set("cudaSynchronize", Napi::Function::New(env, CudaSynchronize));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  return exports;
}

}  // namespace tessera

static Napi::Object InitTessera(Napi::Env env, Napi::Object exports) { return tessera::Init(env, exports); }
NODE_API_MODULE(tessera_addon, InitTessera)
