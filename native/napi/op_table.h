#pragma once
#include <cstddef>

#include "napi/op_call.h"

namespace tessera {
const OpEntry* op_table(size_t* count);
}
