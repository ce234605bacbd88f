#ifndef SASLGATE_CCRYPT_SHIM_H
#define SASLGATE_CCRYPT_SHIM_H
#include <crypt.h>
#endif
