// The N-API binding. It exposes:
//   Storage            owned memory on one device: new Storage(nbytes, device, zero = true), .free(),
//                      .read(byteOffset, byteLength) -> ArrayBuffer, .write(byteOffset, typedArray)
//   storageNew(nbytes, device, zero) -> handle, storageFree(handle), storageRead(handle, off, len),
//   storageWrite(handle, off, typedArray)
//                      the same storage as a plain number (see "Storage handles" below); what
//                      lib/ uses for every tensor
//   ops[name](storages, layout, scalars)
//                      one function per row of the op table (native/napi/op_table.cpp); a storage
//                      argument is a Storage object or a handle
//   memoryStats(), emptyCache(), cuda{...}, cpu{...}
// Every argument from JS is checked here before a kernel runs: a layout that would reach outside
// its storage, a freed storage, a bad dtype code, become JS Errors naming the op.
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/storage.h"
#include "cpu/cpu_features.h"
#include "cuda/cuda_api.h"
#include "napi/op_table.h"

namespace tessera {

namespace {

void CheckRange(Napi::Env env, const Storage* s, const char* what, double off, double len) {
  if (s->freed) throw Napi::Error::New(env, std::string(what) + ": storage has been freed (tensor disposed)");
  if (!(off >= 0) || !(len >= 0) || off != std::floor(off) || len != std::floor(len) || off + len > (double)s->nbytes)
    throw Napi::RangeError::New(env, std::string(what) + ": byte range [" + std::to_string(off) + ", " +
                                         std::to_string(off + len) + ") is outside the storage of " +
                                         std::to_string(s->nbytes) + " bytes");
}

// (byteOffset, byteLength) from info[first], info[first + 1] -> a new ArrayBuffer with the bytes.
Napi::Value ReadStorage(const Napi::CallbackInfo& info, size_t first, Storage* s, const char* what) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 2 || !info[first].IsNumber() || !info[first + 1].IsNumber())
    throw Napi::TypeError::New(env, std::string(what) + ": expected (byteOffset: number, byteLength: number)");
  double off = info[first].As<Napi::Number>().DoubleValue(), len = info[first + 1].As<Napi::Number>().DoubleValue();
  CheckRange(env, s, what, off, len);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, (size_t)len);
  const char* src = static_cast<const char*>(s->data) + (size_t)off;
  try {
    if (s->device == Device::CPU) std::memcpy(buf.Data(), src, (size_t)len);
    else cuda::copy_to_host(buf.Data(), src, (size_t)len);
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  return buf;
}

// (byteOffset, typedArray) from info[first], info[first + 1]: copies the array's bytes in.
Napi::Value WriteStorage(const Napi::CallbackInfo& info, size_t first, Storage* s, const char* what) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 2 || !info[first].IsNumber() || !info[first + 1].IsTypedArray())
    throw Napi::TypeError::New(env, std::string(what) + ": expected (byteOffset: number, data: TypedArray)");
  double off = info[first].As<Napi::Number>().DoubleValue();
  Napi::TypedArray arr = info[first + 1].As<Napi::TypedArray>();
  size_t len = arr.ByteLength();
  CheckRange(env, s, what, off, (double)len);
  const char* src = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  char* dst = static_cast<char*>(s->data) + (size_t)off;
  try {
    if (s->device == Device::CPU) std::memcpy(dst, src, len);
    else cuda::copy_to_device(dst, src, len);
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

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

  Napi::Value Read(const Napi::CallbackInfo& info) { return ReadStorage(info, 0, storage_, "Storage.read"); }
  Napi::Value Write(const Napi::CallbackInfo& info) { return WriteStorage(info, 0, storage_, "Storage.write"); }

  Storage* storage_ = nullptr;
  int64_t accounted_ = 0;
};

// Storage handles. A Storage object is an ObjectWrap whose C++ half is freed only by its
// finalizer, and Node runs those from the event loop: a synchronous training loop (thousands of
// tensors per step, never yielding) piles up ~250 bytes per tensor ever created, and the small
// blocks left between the large ones fragment the heap, so the process grew by hundreds of MB
// per minute with flat live memory. lib/ therefore holds each storage as a number, a handle into
// this table, freed completely and at once by storageFree (the JS side keeps a
// FinalizationRegistry as the safety net for tensors dropped without dispose()). A handle is
// gen * 2^24 + slot; a slot's generation advances when it is freed, so a stale handle is
// recognised (an error naming the op, never another tensor's memory), and a number that is not
// a handle (gen 0, slot out of range, not an integer) is rejected as "not a Storage".
//
// V8 is told about handle storages' host memory as a high-water mark: the hint rises when the
// live total exceeds every earlier total and never falls. A training step allocates and frees
// hundreds of MB; reporting each change (as Storage objects do) made V8 start a full
// mark-compact several times per step ("external memory pressure", ~10% of a step), while the
// high-water mark stops moving after the first step and still grows, prompting collections
// (and with them the FinalizationRegistry safety net), when undisposed tensors pile up.
struct HandleSlot {
  Storage* s = nullptr;
  uint32_t gen = 1;
  int64_t bytes = 0;
};
int64_t g_handle_live_bytes = 0, g_handle_reported_bytes = 0;
std::vector<HandleSlot> g_slots;
std::vector<uint32_t> g_free_slots;
constexpr double kSlotSpan = 16777216.0;  // 2^24 slots
constexpr uint32_t kMaxGen = 1u << 28;    // handles stay below 2^52

enum class HandleState { Live, Stale, Invalid };

HandleState lookup_handle(double h, Storage** out) {
  *out = nullptr;
  if (!(h >= kSlotSpan) || h != std::floor(h) || h >= kSlotSpan * kMaxGen) return HandleState::Invalid;
  double gen = std::floor(h / kSlotSpan);
  size_t slot = (size_t)(h - gen * kSlotSpan);
  if (slot >= g_slots.size()) return HandleState::Invalid;
  const HandleSlot& e = g_slots[slot];
  if (e.s == nullptr || e.gen != (uint32_t)gen) return HandleState::Stale;
  *out = e.s;
  return HandleState::Live;
}

Storage* live_handle(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + ": expected a storage handle (number)");
  Storage* s = nullptr;
  HandleState st = lookup_handle(v.As<Napi::Number>().DoubleValue(), &s);
  if (st == HandleState::Invalid) throw Napi::TypeError::New(env, std::string(what) + ": not a storage handle");
  if (st == HandleState::Stale) throw Napi::Error::New(env, std::string(what) + ": storage has been freed (tensor disposed)");
  return s;
}

Storage* alloc_checked(Napi::Env env, const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, std::string(what) + ": expected (nbytes: number, device: number)");
  double nbytes = info[0].As<Napi::Number>().DoubleValue();
  double dev = info[1].As<Napi::Number>().DoubleValue();
  if (!(nbytes >= 0) || nbytes != std::floor(nbytes) || nbytes > (double)kMaxAllocBytes)
    throw Napi::RangeError::New(env, std::string(what) + ": nbytes must be an integer in [0, 2^40], got " + std::to_string(nbytes));
  if (dev != 0 && dev != 1) throw Napi::RangeError::New(env, std::string(what) + ": device must be 0 (cpu) or 1 (cuda)");
  bool zero = info.Length() < 3 || !info[2].IsBoolean() || info[2].As<Napi::Boolean>().Value();
  try {
    return storage_alloc((size_t)nbytes, (Device)(int)dev, zero);
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value StorageNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Storage* s = alloc_checked(env, info, "storageNew");
  uint32_t slot;
  if (!g_free_slots.empty()) {
    slot = g_free_slots.back();
    g_free_slots.pop_back();
  } else {
    if ((double)g_slots.size() >= kSlotSpan) {
      storage_release(s);
      delete s;
      throw Napi::Error::New(env, "storageNew: too many live storages (2^24)");
    }
    slot = (uint32_t)g_slots.size();
    g_slots.emplace_back();
  }
  HandleSlot& e = g_slots[slot];
  e.s = s;
  e.bytes = s->device == Device::CPU ? (int64_t)s->nbytes : 0;
  g_handle_live_bytes += e.bytes;
  if (g_handle_live_bytes > g_handle_reported_bytes) {
    Napi::MemoryManagement::AdjustExternalMemory(env, g_handle_live_bytes - g_handle_reported_bytes);
    g_handle_reported_bytes = g_handle_live_bytes;
  }
  return Napi::Number::New(env, (double)e.gen * kSlotSpan + (double)slot);
}

// Idempotent: freeing a stale handle does nothing.
Napi::Value StorageFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "storageFree: expected a storage handle");
  double h = info[0].As<Napi::Number>().DoubleValue();
  Storage* s = nullptr;
  HandleState st = lookup_handle(h, &s);
  if (st == HandleState::Invalid) throw Napi::TypeError::New(env, "storageFree: not a storage handle");
  if (st == HandleState::Stale) return env.Undefined();
  size_t slot = (size_t)(h - std::floor(h / kSlotSpan) * kSlotSpan);
  HandleSlot& e = g_slots[slot];
  storage_release(s);
  delete s;
  g_handle_live_bytes -= e.bytes;
  e.s = nullptr;
  e.bytes = 0;
  e.gen = e.gen + 1 >= kMaxGen ? 1 : e.gen + 1;
  g_free_slots.push_back((uint32_t)slot);
  return env.Undefined();
}

Napi::Value StorageRead(const Napi::CallbackInfo& info) {
  Storage* s = live_handle(info.Env(), info[0], "Storage.read");
  return ReadStorage(info, 1, s, "Storage.read");
}

Napi::Value StorageWrite(const Napi::CallbackInfo& info) {
  Storage* s = live_handle(info.Env(), info[0], "Storage.write");
  return WriteStorage(info, 1, s, "Storage.write");
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  host_empty_cache();
  cuda::empty_cache();  // cached device blocks too (a no-op without CUDA)
  return info.Env().Undefined();
}

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
      Storage* s = nullptr;
      if (v.IsNumber()) {
        HandleState st = lookup_handle(v.As<Napi::Number>().DoubleValue(), &s);
        if (st == HandleState::Invalid) fail(op, ": tensor argument ", i, " is not a Storage");
        if (st == HandleState::Stale) fail(op, ": tensor ", i, " has been disposed");
      } else {
        if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_storage_ctor->Value()))
          fail(op, ": tensor argument ", i, " is not a Storage");
        s = StorageWrap::Unwrap(v.As<Napi::Object>())->get();
      }
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
  o.Set("hostCachedBytes", (double)m.host_cached_bytes);
  o.Set("deviceCachedBytes", (double)cuda::cached_bytes());
  o.Set("devicePeakBytes", (double)cuda::peak_bytes());
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
  exports.Set("storageNew", Napi::Function::New(env, StorageNew));
  exports.Set("storageFree", Napi::Function::New(env, StorageFree));
  exports.Set("storageRead", Napi::Function::New(env, StorageRead));
  exports.Set("storageWrite", Napi::Function::New(env, StorageWrite));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));

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
