// fuzz/program.hpp - a random program of channel operations, run on csp's
// deterministic executor and checked step by step against channel_model.hpp.
//
// The input bytes decode into: 2-4 goroutines, 1-3 int channels of capacity
// 0-3, a scheduling seed, and for each goroutine a list of operations (send,
// recv, try_send, try_recv, close, select over 1-3 distinct channels with or
// without default). Every value sent is unique, so a value received twice or
// lost is caught.
//
// The check, per operation of goroutine g (the executor is single-threaded,
// so nothing else runs between the two halves unless g suspends):
//  before: ask the model which cases can proceed; if none and there is no
//          default, the model blocks g on all of them.
//  after:  if the model blocked g, the real operation must have suspended
//          and must report what the model's counterpart gave g. Otherwise
//          it must not have suspended (no other goroutine started an
//          operation meanwhile), its case must be one the model allowed, and
//          the model performing that case must give the same result.
// At the end: a deadlock is reported exactly when the model has blocked
// goroutines (and they are the unfinished ones), and every channel holds the
// model's buffer, in order, and the model's closed flag.
//
// No goroutine runs more than 40 operations, so the cooperative budget (128
// immediate completions per resumption) never makes an operation yield.
#pragma once

#include <csp/csp.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "channel_model.hpp"

namespace csp_fuzz {

/// The real implementation disagreed with the model.
class divergence : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct program {
    std::uint64_t seed = 0;
    std::vector<std::size_t> capacities;
    std::vector<std::vector<operation>> goroutines;
};

inline constexpr std::size_t max_ops_per_goroutine = 40;

/// Reads bytes, yielding zeros once the input is exhausted.
class byte_reader {
public:
    byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    unsigned byte() { return pos_ < size_ ? data_[pos_++] : 0u; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

inline operation decode_operation(byte_reader& in, int channels, int& next_value) {
    operation op;
    unsigned kind = in.byte() % 16;
    auto one_case = [&](bool is_send) {
        op.cases.push_back({is_send, int(in.byte() % unsigned(channels)), is_send ? next_value++ : 0});
    };
    if (kind < 4) op.kind = op_kind::send, one_case(true);
    else if (kind < 8) op.kind = op_kind::recv, one_case(false);
    else if (kind < 10) op.kind = op_kind::try_send, one_case(true);
    else if (kind < 12) op.kind = op_kind::try_recv, one_case(false);
    else if (kind < 13) op.kind = op_kind::close, one_case(false);
    else {
        op.kind = op_kind::select;
        unsigned shape = in.byte();
        op.has_default = shape & 1;
        for (unsigned n = 1 + (shape >> 1) % 3, i = 0; i < n; ++i) {
            unsigned b = in.byte();
            int c = int((b >> 1) % unsigned(channels));
            bool used = false;  // one case per channel: the model then knows which waiter a counterpart takes
            for (auto& k : op.cases) used |= k.channel == c;
            if (!used) op.cases.push_back({bool(b & 1), c, (b & 1) ? next_value++ : 0});
        }
    }
    return op;
}

inline program decode(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    program p;
    int goroutines = 2 + int(in.byte() % 3), channels = 1 + int(in.byte() % 3);
    for (int c = 0; c < channels; ++c) p.capacities.push_back(in.byte() % 4);
    for (int i = 0; i < 4; ++i) p.seed = p.seed << 8 | in.byte();
    p.goroutines.resize(std::size_t(goroutines));
    int next_value = 1;
    while (!in.empty()) {
        auto& ops = p.goroutines[in.byte() % unsigned(goroutines)];
        operation op = decode_operation(in, channels, next_value);
        if (ops.size() < max_ops_per_goroutine) ops.push_back(std::move(op));
    }
    return p;
}

// ---- the real side: performing an operation with csp ----

using int_channel = csp::channel<int>;

inline void note_case(outcome& o, std::optional<int>& v) {
    if (v) o.value = *v;
    else o.status = outcome::closed;
}
inline void note_case(outcome&, std::monostate) {}

template <class R, std::size_t... I>
outcome read_select(R& r, std::size_t cases, std::index_sequence<I...>) {
    outcome o;
    o.case_index = int(r.index());
    if (r.index() == cases) o.status = outcome::default_taken;
    ((r.index() == I ? note_case(o, r.template get<I>()) : void()), ...);
    return o;
}

template <class... C>
csp::task<outcome> select_of(bool has_default, C... cases) {
    constexpr std::size_t n = sizeof...(C);
    try {
        if (has_default) {
            auto r = co_await csp::select(std::move(cases)..., csp::default_case);
            co_return read_select(r, n, std::make_index_sequence<n>());
        }
        auto r = co_await csp::select(std::move(cases)...);
        co_return read_select(r, n, std::make_index_sequence<n>());
    } catch (const csp::channel_closed&) {
        co_return outcome{outcome::panic, -1, std::nullopt};
    }
}

/// Builds the select's cases one at a time (each a different awaiter type).
template <class... C>
csp::task<outcome> build_select(std::vector<int_channel>& chans, const operation& op, C... built) {
    constexpr std::size_t i = sizeof...(C);
    if constexpr (i < 3) {
        if (i < op.cases.size()) {
            const select_case_spec& k = op.cases[i];
            if (k.is_send) return build_select(chans, op, std::move(built)..., chans[std::size_t(k.channel)].send(k.value));
            return build_select(chans, op, std::move(built)..., chans[std::size_t(k.channel)].recv());
        }
    }
    if constexpr (i == 0) throw std::logic_error("csp_fuzz: a select without cases");
    else return select_of(op.has_default, std::move(built)...);
}

inline outcome from_status(csp::chan_status s) {
    switch (s) {
    case csp::chan_status::ok: return {};
    case csp::chan_status::closed: return {outcome::closed, 0, std::nullopt};
    default: return {outcome::would_block, 0, std::nullopt};
    }
}

inline csp::task<outcome> perform(std::vector<int_channel>& chans, const operation& op) {
    int_channel& ch = chans[std::size_t(op.cases[0].channel)];
    const int value = op.cases[0].value;
    switch (op.kind) {
    case op_kind::send:
        try {
            co_await ch.send(value);
            co_return outcome{};
        } catch (const csp::channel_closed&) {
            co_return outcome{outcome::panic, -1, std::nullopt};
        }
    case op_kind::recv: {
        outcome o;
        auto v = co_await ch.recv();
        note_case(o, v);
        co_return o;
    }
    case op_kind::try_send: co_return from_status(ch.try_send(value));
    case op_kind::try_recv: {
        auto r = ch.try_recv();
        outcome o = from_status(r.status);
        o.value = r.value;
        co_return o;
    }
    case op_kind::close:
        try {
            ch.close();
            co_return outcome{};
        } catch (const csp::channel_closed&) {
            co_return outcome{outcome::panic, -1, std::nullopt};
        }
    case op_kind::select: co_return co_await build_select(chans, op);
    }
    throw std::logic_error("csp_fuzz: unknown operation");
}

// ---- the comparison ----

class checked_run {
public:
    explicit checked_run(const program& p) : p_(p), model_(p.capacities, int(p.goroutines.size())) {
        for (std::size_t c : p.capacities) chans_.push_back(csp::make_channel<int>(c));
        finished_.assign(p.goroutines.size(), false);
    }

    /// Runs the program; throws divergence on any disagreement. Returns the
    /// number of operations performed.
    std::size_t run() {
        bool deadlocked = false;
        try {
            csp::testing::run(p_.seed, [this] { return main(); });
        } catch (const csp::deadlock_error&) {
            deadlocked = true;
        }
        check_end(deadlocked);
        return operations_;
    }

private:
    csp::task<> main() {
        csp::wait_group wg;
        wg.add(std::ptrdiff_t(p_.goroutines.size()));
        for (std::size_t g = 0; g < p_.goroutines.size(); ++g)
            csp::go([](checked_run& self, int g, csp::wait_group& wg) -> csp::task<> {
                co_await self.goroutine(g);
                wg.done();
            }, std::ref(*this), int(g), std::ref(wg));
        co_await wg.wait();
    }

    csp::task<> goroutine(int g) {
        const auto& ops = p_.goroutines[std::size_t(g)];
        for (std::size_t i = 0; i < ops.size(); ++i) {
            const operation& op = ops[i];
            const std::uint64_t started = ++events_;
            ++operations_;
            std::vector<int> ready = model_.ready_cases(op);
            bool blocks = (op.kind == op_kind::send || op.kind == op_kind::recv || op.kind == op_kind::select) &&
                          ready.empty() && !op.has_default;
            if (blocks) model_.block(g, op);
            outcome real = co_await perform(chans_, op);
            bool suspended = events_ != started;
            outcome expected = blocks ? expect_blocked(g, suspended) : expect_immediate(op, ready, real, suspended);
            if (!same(expected, real)) fail(g, i, "expected " + expected.describe() + ", got " + real.describe());
        }
        finished_[std::size_t(g)] = true;
    }

    outcome expect_blocked(int g, bool suspended) {
        if (!suspended || !model_.completion(g))
            fail(g, -1, suspended ? "resumed, but the model has it still blocked" : "did not block, but the model blocks");
        return model_.take_completion(g);
    }

    outcome expect_immediate(const operation& op, const std::vector<int>& ready, const outcome& real, bool suspended) {
        if (suspended) throw divergence("an operation the model completes at once suspended");
        switch (op.kind) {
        case op_kind::close: return model_.close(op.cases[0].channel);
        case op_kind::try_send:
        case op_kind::try_recv:
            return ready.empty() ? outcome{outcome::would_block, 0, std::nullopt} : model_.proceed(op, 0);
        default: break;
        }
        if (ready.empty()) return outcome{outcome::default_taken, int(op.cases.size()), std::nullopt};
        int chosen = real.status == outcome::panic ? panicking_case(op, ready) : real.case_index;
        for (int r : ready)
            if (r == chosen) return model_.proceed(op, chosen);
        throw divergence("case " + std::to_string(real.case_index) + " fired, but the model has it not ready");
    }

    /// The ready send case on a closed channel that a panic came from.
    int panicking_case(const operation& op, const std::vector<int>& ready) const {
        for (int r : ready) {
            const select_case_spec& k = op.cases[std::size_t(r)];
            if (k.is_send && model_.chan(k.channel).closed) return r;
        }
        throw divergence("a panic, but no ready case sends on a closed channel");
    }

    /// Panics carry no case index on the real side (an exception).
    static bool same(const outcome& expected, const outcome& real) {
        if (expected.status == outcome::panic || real.status == outcome::panic) return expected.status == real.status;
        return expected == real;
    }

    void check_end(bool deadlocked) {
        bool any_blocked = false;
        for (std::size_t g = 0; g < finished_.size(); ++g) {
            any_blocked |= model_.blocked(int(g));
            if (finished_[g] == model_.blocked(int(g)))
                fail(int(g), -1, finished_[g] ? "finished, but the model has it blocked" : "never finished");
        }
        if (deadlocked != any_blocked)
            throw divergence(deadlocked ? "a deadlock the model does not have" : "no deadlock, but the model has one");
        for (std::size_t c = 0; c < chans_.size(); ++c) {
            const auto& m = model_.chan(int(c));
            if (chans_[c].closed() != m.closed) throw divergence("channel " + std::to_string(c) + ": closed flag");
            for (int v : m.buffer) {
                auto r = chans_[c].try_recv();
                if (!r || *r.value != v) throw divergence("channel " + std::to_string(c) + ": buffered values differ");
            }
            auto last = chans_[c].try_recv().status;
            if (last != (m.closed ? csp::chan_status::closed : csp::chan_status::would_block))
                throw divergence("channel " + std::to_string(c) + ": holds more than the model's buffer");
        }
    }

    [[noreturn]] void fail(int g, long op, const std::string& what) const {
        throw divergence("goroutine " + std::to_string(g) + (op >= 0 ? " operation " + std::to_string(op) : "") +
                         " (seed " + std::to_string(p_.seed) + "): " + what);
    }

    const program& p_;
    channel_model model_;
    std::vector<int_channel> chans_;
    std::vector<bool> finished_;
    std::uint64_t events_ = 0;
    std::size_t operations_ = 0;
};

/// Decodes and runs one input; throws divergence on a disagreement.
inline std::size_t run_input(const std::uint8_t* data, std::size_t size) {
    program p = decode(data, size);
    return checked_run(p).run();
}

}  // namespace csp_fuzz
