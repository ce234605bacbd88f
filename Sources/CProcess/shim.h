// prctl(2) for saslgated: variadic in C, so Swift cannot call it directly; these fixed wrappers can.
#include <sys/prctl.h>

static inline int saslgate_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, (unsigned long)on, 0UL, 0UL, 0UL); }
static inline int saslgate_get_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL); }
