#ifndef ALLOCATION_COUNTER_H
#define ALLOCATION_COUNTER_H
#include <stdint.h>

/// Counts heap allocations made by the calling thread while counting is on.
/// Linked into the test executable, whose malloc family interposes glibc's
/// (an executable's symbols come first in the dynamic lookup scope), so no
/// LD_PRELOAD is needed.
void allocation_counter_start(void);
/// Stops counting and returns the number of allocations since start.
uint64_t allocation_counter_stop(void);

#endif
