// fuzz/fuzz_channels.cpp - the libFuzzer target: each input is a random
// program of channel operations (see program.hpp), run on the deterministic
// executor and checked step by step against the reference model. A
// divergence prints what differed and aborts, which libFuzzer reports as a
// crash and saves the input.
#include <cstdio>
#include <cstdlib>

#include "program.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        csp_fuzz::run_input(data, size);
    } catch (const csp_fuzz::divergence& e) {
        std::fprintf(stderr, "csp fuzz: divergence from the model: %s\n", e.what());
        std::abort();
    }
    return 0;
}
