// placeholder, replaced by the sasldb passdb
