#ifndef SASLGATE_CLDAP_SHIM_H
#define SASLGATE_CLDAP_SHIM_H
// OpenLDAP's client library (Debian libldap-dev): only the non-deprecated *_ext / *_s calls are used.
#define LDAP_DEPRECATED 0
#include <lber.h>
#include <ldap.h>

// Macros Swift does not import (casts, pointers), as constants.
static const int saslgate_ldap_scope_base = LDAP_SCOPE_BASE;
static const int saslgate_ldap_scope_onelevel = LDAP_SCOPE_ONELEVEL;
static const int saslgate_ldap_scope_subtree = LDAP_SCOPE_SUBTREE;
static inline void *saslgate_ldap_opt_on(void) { return LDAP_OPT_ON; }
static inline void *saslgate_ldap_opt_off(void) { return LDAP_OPT_OFF; }
#endif
