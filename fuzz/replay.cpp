// fuzz/replay.cpp - runs the fuzz target's check without libFuzzer: every
// file of the given corpus directories, then (optionally) a number of inputs
// made by a seeded generator. CTest runs it in every build, so a regression
// against the checked-in corpus is caught without clang's fuzzer runtime.
//
//   fuzz_replay DIR... [--random N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "program.hpp"

namespace {

std::vector<std::uint8_t> read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool run_one(const std::vector<std::uint8_t>& input, const std::string& name, std::size_t& operations) {
    try {
        operations += csp_fuzz::run_input(input.data(), input.size());
        return true;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_replay: %s: %s\n", name.c_str(), e.what());
        return false;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t inputs = 0, operations = 0, random_inputs = 0;
    int failures = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            random_inputs = std::strtoull(argv[++i], nullptr, 10);
            continue;
        }
        std::vector<std::filesystem::path> files;
        for (const auto& entry : std::filesystem::directory_iterator(argv[i]))
            if (entry.is_regular_file()) files.push_back(entry.path());
        if (files.empty()) {
            std::fprintf(stderr, "fuzz_replay: no inputs in %s\n", argv[i]);
            return 2;
        }
        for (const auto& f : files) failures += !run_one(read_all(f), f.string(), operations), ++inputs;
    }
    csp::detail::wyrand rng{12345};
    for (std::size_t n = 0; n < random_inputs; ++n, ++inputs) {
        std::vector<std::uint8_t> input(8 + rng.below(300));
        for (auto& b : input) b = std::uint8_t(rng.next());
        failures += !run_one(input, "random input " + std::to_string(n), operations);
    }
    std::printf("fuzz_replay: %zu inputs, %zu operations checked, %d divergences\n", inputs, operations, failures);
    return failures ? 1 : 0;
}
