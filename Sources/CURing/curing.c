#include "curing.h"
