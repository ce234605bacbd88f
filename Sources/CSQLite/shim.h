#ifndef SASLGATE_CSQLITE_SHIM_H
#define SASLGATE_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
