#ifndef CURING_H
#define CURING_H
// liburing and the Linux headers NetStack needs, plus small helpers for what
// Swift cannot import (function-like macros, variadic ioctl, static inline gaps).
#include <features.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#endif
