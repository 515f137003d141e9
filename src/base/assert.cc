#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace weft::internal {

void AssertFailed(const char* expression, const char* file, int line, const char* function) {
  // stderr is unbuffered; write directly so the message survives the abort.
  std::fprintf(stderr, "weft: assertion failed: %s\n  at %s:%d in %s\n", expression, file, line,
               function);
  std::abort();
}

}  // namespace weft::internal
