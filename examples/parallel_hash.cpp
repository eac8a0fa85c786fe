// Go pattern: bounded parallelism (bounded.go in go.dev/blog/pipelines).
//
// Hashes every regular file under a directory with a fixed number of worker
// goroutines, however many files there are: a walker sends the paths on one
// channel, `workers` goroutines read and hash them and send the digests on
// another, and main collects them. With an argument it hashes that directory;
// without one it builds a small tree in a temporary directory, and checks
// every digest against one computed sequentially.
//
// The hash is 64-bit FNV-1a (a checksum, not a cryptographic hash; the point
// is the shape of the program). File I/O blocks a pool worker while it runs.
#include <csp/csp.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <stdexcept>
#include <utility>

#include <unistd.h>  // getpid

namespace fs = std::filesystem;
using digest = std::pair<std::string, std::uint64_t>;  // path, hash

std::uint64_t fnv1a(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string());
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::istreambuf_iterator<char> it(in), end; it != end; ++it) {
        h ^= static_cast<unsigned char>(*it);
        h *= 0x100000001b3ull;
    }
    return h;
}

csp::task<> walk(fs::path root, csp::channel<std::string> paths) {
    for (const auto& entry : fs::recursive_directory_iterator(root))
        if (entry.is_regular_file()) co_await paths.send(entry.path().string());
    paths.close();
}

csp::task<> hasher(csp::channel<std::string> paths, csp::channel<digest> out, csp::wait_group& workers) {
    while (auto p = co_await paths.recv()) co_await out.send(digest{*p, fnv1a(*p)});
    workers.done();
}

csp::task<> close_after(csp::wait_group& workers, csp::channel<digest> out) {
    co_await workers.wait();
    out.close();  // every hasher is done: no more digests
}

csp::task<std::map<std::string, std::uint64_t>> hash_tree(fs::path root, int workers) {
    auto paths = csp::make_channel<std::string>();
    auto digests = csp::make_channel<digest>(workers);
    csp::wait_group running;
    csp::go(walk(root, paths));
    running.add(workers);
    for (int i = 0; i < workers; ++i) csp::go(hasher(paths, digests, running));
    csp::go(close_after(running, digests));
    std::map<std::string, std::uint64_t> result;
    while (auto d = co_await digests.recv()) result.insert(std::move(*d));
    co_return result;
}

// A tree of 3 directories with 40 files of different sizes.
fs::path make_sample_tree() {
    fs::path root = fs::temp_directory_path() / ("csp_parallel_hash_" + std::to_string(::getpid()));
    fs::remove_all(root);
    for (int i = 0; i < 40; ++i) {
        fs::path dir = root / ("dir" + std::to_string(i % 3)) / (i % 2 ? "odd" : "even");
        fs::create_directories(dir);
        std::ofstream(dir / ("file" + std::to_string(i) + ".txt")) << std::string(i * 97, char('a' + i % 26));
    }
    return root;
}

int main(int argc, char** argv) {
    bool sample = argc < 2;
    fs::path root = sample ? make_sample_tree() : fs::path(argv[1]);
    auto digests = csp::run([&]() { return hash_tree(root, 4); });
    for (const auto& [path, h] : digests) std::printf("%016llx  %s\n", static_cast<unsigned long long>(h), path.c_str());

    bool ok = true;
    if (sample) {  // the same digests, computed one file at a time
        std::size_t files = 0;
        for (const auto& entry : fs::recursive_directory_iterator(root))
            if (entry.is_regular_file()) {
                ++files;
                auto it = digests.find(entry.path().string());
                ok = ok && it != digests.end() && it->second == fnv1a(entry.path());
            }
        ok = ok && files == 40 && digests.size() == files;
        fs::remove_all(root);
    }
    std::printf("%zu files hashed by 4 workers: %s\n", digests.size(), ok ? "ok" : "WRONG RESULT");
    return ok ? 0 : 1;
}
