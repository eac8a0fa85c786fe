// What a parked goroutine costs (SPEC §9, W6: at most 256 bytes each). A
// goroutine blocked in `co_await ch.recv()` is one coroutine frame, taken
// from the frame cache (detail/frame_allocator.hpp), whose blocks are
// 24 + 16k bytes and cost block + 8 bytes of malloc chunk, plus its
// 40-byte slot in the goroutine registry's slabs: the frame must fit a
// 208-byte block. Its size depends on the compiler and the
// optimisation level, so the frame check runs in optimised builds without
// sanitizers (what the W6 workload measures); the layouts of the parts csp
// controls are checked everywhere by the static_asserts below.
//
// This program frees no frame before it measures one, so the first frame of
// a fresh thread comes from operator new, which the counting allocator sees.
#include <cstddef>
#include <optional>
#include <string>
#include <thread>

#include "catch.hpp"
#include "counting_allocator.hpp"  // this program records its heap allocations
#include "helpers.hpp"

#if defined(__SANITIZE_THREAD__)
#define CSP_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSP_TEST_TSAN 1
#endif
#endif
#ifndef CSP_TEST_TSAN
#define CSP_TEST_TSAN 0
#endif

// Frame sizes are what W6 measures only in optimised builds without
// sanitizers, and the counting allocator is needed to see them.
#if defined(__OPTIMIZE__) && CSP_TEST_COUNTS_ALLOCATIONS && !CSP_TEST_TSAN
#define CSP_TEST_MEASURES_FRAMES 1
#else
#define CSP_TEST_MEASURES_FRAMES 0
#endif

namespace {

// The W6 workload's goroutine (bench/workloads.cpp, w6_parked).
csp::task<> parked_receiver(csp::channel<long long> ch, csp::wait_group* started, csp::wait_group* finished) {
    started->done();
    std::optional<long long> v = co_await ch.recv();  // blocks until close: nullopt
    if (!v) finished->done();
}

#if CSP_TEST_MEASURES_FRAMES
constexpr std::size_t w6_block_bar = 208;  // + 8 bytes of malloc header + a 40-byte registry slot = 256

// The largest block this build may use: the bar, with g++ 12 and clang 14.
constexpr std::size_t block_limit = w6_block_bar;
#endif

// The parts of the frame that csp lays out, the same with g++ and clang (the
// x86-64 Itanium ABI): the promise is a tagged registry/continuation word
// and a pointer to the goroutine's registry slot (or, in an awaited task,
// the exception and the goroutine); the receive awaiter is the waiter, the blocked_op,
// the wait note, the channel pointer and the std::optional result.
static_assert(sizeof(csp::detail::goroutine_node) == 40);  // in the registry's slabs, not in the frame
static_assert(sizeof(csp::detail::goroutine_wait) == 24);
#if CSP_DETAIL_TAIL_CALLS  // otherwise the promise has a flag more (task.hpp)
static_assert(sizeof(csp::detail::task_promise<void>) == 24);
#endif
static_assert(sizeof(csp::detail::channel_op_base) == 80);  // its flags sit in padding
static_assert(sizeof(csp::recv_awaiter<long long>) == 88);
static_assert(sizeof(csp::channel<long long>) == sizeof(void*));  // an intrusive count, not a shared_ptr
static_assert(sizeof(csp::send_awaiter<long long>) == 112);

#if CSP_TEST_MEASURES_FRAMES
/// The block size the frame cache asks operator new for when it creates one
/// parked_receiver frame on a fresh thread (whose cache is empty).
std::size_t parked_frame_block(const csp::channel<long long>& ch, csp::wait_group& started,
                               csp::wait_group& finished) {
    // An opaque call the optimiser cannot see through.
    static void (*volatile escape)(void*) = [](void*) {};
    std::size_t block = 0;
    long allocations = -1;
    std::thread([&] {
        // Creates this thread's cache (its first use may allocate) with a
        // block of another class, which the frame cannot reuse.
        csp::detail::deallocate_frame(csp::detail::allocate_frame(1), 1);
        long before = g_allocations.load();
        csp::task<> t = parked_receiver(ch, &started, &finished);  // lazy: allocates the frame only
        // The task escapes (as a spawned one would), so that clang cannot
        // elide the frame allocation onto this stack (HALO).
        escape(&t);
        allocations = g_allocations.load() - before;
        block = g_last_allocation_size.load();
    }).join();
    return allocations == 1 ? block : 0;
}
#endif

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
    return n;
}

}  // namespace

TEST_CASE("a goroutine parked on a receive stays within its frame budget (W6: 256 bytes) in optimised builds") {
    auto ch = csp::make_channel<long long>();
    csp::wait_group started, finished;
#if CSP_TEST_MEASURES_FRAMES
    std::size_t block = parked_frame_block(ch, started, finished);
    INFO("frame block: " << block << " bytes");
    REQUIRE(block != 0);  // the frame came from operator new, as the only allocation
    CHECK(block <= block_limit);
    if (block > w6_block_bar) WARN("the W6 bar needs a block of at most " << w6_block_bar << " bytes");
#else
    WARN("frame size not checked: an unoptimised or sanitized build has larger frames");
#endif

    // And such goroutines really park, and all resume.
    constexpr int n = 100;
    csp::run_loop loop;
    started.add(n);
    finished.add(n);
    for (int i = 0; i < n; ++i) csp::spawn(loop, parked_receiver(ch, &started, &finished));
    loop.run_until_idle();
    CHECK(loop.goroutines().size() == std::size_t(n));
    CHECK(count_of(csp::dump_string(), "[receive from channel ") >= std::size_t(n));
    ch.close();
    loop.run_until_idle();
    CHECK(loop.goroutines().size() == 0);
}
