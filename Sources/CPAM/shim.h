#ifndef SASLGATE_CPAM_SHIM_H
#define SASLGATE_CPAM_SHIM_H
#include <security/pam_appl.h>
#endif
