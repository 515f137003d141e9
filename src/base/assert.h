// Invariant checks. WEFT_ASSERT stays on in release builds: a broken invariant in a storage
// system must stop the process before it writes wrong bytes, not after. WEFT_DASSERT is for checks
// too expensive for the hot path (whole-structure scans) and is compiled out under NDEBUG.
#pragma once

namespace weft::internal {
[[noreturn]] void AssertFailed(const char* expression, const char* file, int line,
                               const char* function);
}  // namespace weft::internal

#define WEFT_ASSERT(condition)                                                             \
  do {                                                                                     \
    if (__builtin_expect(!(condition), 0)) {                                               \
      ::weft::internal::AssertFailed(#condition, __FILE__, __LINE__, __PRETTY_FUNCTION__); \
    }                                                                                      \
  } while (false)

#ifdef NDEBUG
#define WEFT_DASSERT(condition) \
  do {                          \
    (void)sizeof(condition);    \
  } while (false)
#else
#define WEFT_DASSERT(condition) WEFT_ASSERT(condition)
#endif
