// Host-side entry points of the CUDA backend, callable from plain C++ translation units.
// When the addon is built without nvcc these are inline fallbacks: the device count is 0 and
// anything that would touch a GPU throws a clear error instead of failing to link.
#pragma once
#include <cstddef>
#include <string>

#include "core/error.h"

namespace tessera::cuda {

#ifdef TESSERA_WITH_CUDA
constexpr bool kCompiled = true;
int device_count();  // usable devices; 0 when there is no driver or no GPU (never throws)
std::string device_name(int index);
std::string runtime_error_text();  // why device_count() is 0, for the user ("" when fine)
void* device_alloc(size_t nbytes);  // zeroed; throws tessera::Error on out-of-memory
void device_free(void* ptr);
void copy_to_device(void* dst, const void* src, size_t nbytes);
void copy_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
void synchronize();
#else
constexpr bool kCompiled = false;
inline int device_count() { return 0; }
inline std::string device_name(int) { return ""; }
inline std::string runtime_error_text() { return "tessera was built without CUDA (no nvcc found at build time)"; }
[[noreturn]] inline void not_built() { fail("cuda: tessera was built without CUDA support (nvcc was not found when the addon was built)"); }
inline void* device_alloc(size_t) { not_built(); }
inline void device_free(void*) {}
inline void copy_to_device(void*, const void*, size_t) { not_built(); }
inline void copy_to_host(void*, const void*, size_t) { not_built(); }
inline void copy_device_to_device(void*, const void*, size_t) { not_built(); }
inline void synchronize() {}
#endif

}  // namespace tessera::cuda
