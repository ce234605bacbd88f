// libFuzzer's driver entry point (compiler-rt FuzzerInterface.h / FuzzerDriver.cpp). The symbol comes
// from the libclang_rt.fuzzer runtime that `-sanitize=fuzzer` links in.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
