// placeholder, replaced by the PAM passdb
