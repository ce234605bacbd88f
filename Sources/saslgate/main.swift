print("saslgate")
