// fuzz/channel_model.hpp - a reference model of Go's channel semantics.
//
// Written from the Go specification and csp's docs, not from csp's code: it
// keeps the obvious state (a FIFO buffer, a closed flag, FIFO queues of
// blocked goroutines) and applies Go's rules literally, with no locks,
// claims or wake-ups. The fuzz harness (program.hpp) asks it, before each
// real operation, which outcomes Go allows, and checks the real one.
//
// The rules, for a channel of capacity `cap`:
//  - A receive can proceed if the buffer holds a value (it takes the oldest,
//    and the longest-blocked sender, if any, moves its value into the freed
//    slot), or a sender is blocked (an unbuffered hand-off from the longest
//    blocked one), or the channel is closed (it yields "closed": nothing).
//  - A send can proceed if the channel is closed (it panics), or a receiver
//    is blocked (hand-off to the longest blocked one), or the buffer has room.
//  - Close panics on a closed channel; otherwise it releases every blocked
//    receiver with "closed" and makes every blocked sender panic.
//  - A select proceeds with one of its cases that can proceed, any of them;
//    if none can, it takes its default case if it has one, or else blocks on
//    all of its cases at once until a counterpart completes exactly one.
//  - try_send / try_recv are selects of one case with a default, except that
//    try_send on a closed channel reports "closed" instead of panicking.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace csp_fuzz {

enum class op_kind { send, recv, try_send, try_recv, close, select };

struct select_case_spec {
    bool is_send;
    int channel;
    int value;  // sends only
};

struct operation {
    op_kind kind;
    std::vector<select_case_spec> cases;  // one for send/recv/try_*/close; 1..3 for select
    bool has_default = false;             // select only
};

/// What an operation did, as the program observes it.
struct outcome {
    enum status_t { ok, closed, would_block, panic, default_taken } status = ok;
    int case_index = 0;                 // select: which case fired
    std::optional<int> value;           // a receive's value

    bool operator==(const outcome&) const = default;
    std::string describe() const {
        static const char* names[] = {"ok", "closed", "would_block", "panic", "default"};
        return std::string(names[status]) + " case " + std::to_string(case_index) +
               (value ? " value " + std::to_string(*value) : "");
    }
};

class channel_model {
public:
    struct blocked_case {
        int goroutine;
        int case_index;
        int value;
    };
    struct channel {
        std::size_t capacity = 0;
        std::deque<int> buffer;
        bool closed = false;
        std::deque<blocked_case> senders, receivers;
    };

    channel_model(std::vector<std::size_t> capacities, int goroutines)
        : blocked_(std::size_t(goroutines)), done_(std::size_t(goroutines)) {
        for (auto c : capacities) channels_.push_back(channel{c, {}, false, {}, {}});
    }

    const channel& chan(int c) const { return channels_[std::size_t(c)]; }

    bool can_proceed(const select_case_spec& k) const {
        const channel& ch = chan(k.channel);
        if (k.is_send) return ch.closed || !ch.receivers.empty() || ch.buffer.size() < ch.capacity;
        return ch.closed || !ch.buffer.empty() || !ch.senders.empty();
    }

    /// The cases of `op` that can proceed now.
    std::vector<int> ready_cases(const operation& op) const {
        std::vector<int> r;
        for (std::size_t i = 0; i < op.cases.size(); ++i)
            if (can_proceed(op.cases[i])) r.push_back(int(i));
        return r;
    }

    /// Performs case `index` of `op` for goroutine `g`; it must be ready.
    outcome proceed(const operation& op, int index) {
        const select_case_spec& k = op.cases[std::size_t(index)];
        outcome o;
        o.case_index = index;
        channel& ch = channels_[std::size_t(k.channel)];
        if (k.is_send) {
            if (ch.closed) o.status = op.kind == op_kind::try_send ? outcome::closed : outcome::panic;
            else if (!ch.receivers.empty()) complete(pop_first(ch.receivers), outcome::ok, k.value);
            else ch.buffer.push_back(k.value);
            return o;
        }
        if (!ch.buffer.empty()) {
            o.value = ch.buffer.front();
            ch.buffer.pop_front();
            if (!ch.senders.empty()) {
                blocked_case s = pop_first(ch.senders);
                ch.buffer.push_back(s.value);
                complete(s, outcome::ok, std::nullopt);
            }
        } else if (!ch.senders.empty()) {
            blocked_case s = pop_first(ch.senders);
            o.value = s.value;
            complete(s, outcome::ok, std::nullopt);
        } else {
            o.status = outcome::closed;
        }
        return o;
    }

    outcome close(int c) {
        channel& ch = channels_[std::size_t(c)];
        if (ch.closed) return {outcome::panic, 0, std::nullopt};
        ch.closed = true;
        while (!ch.receivers.empty()) complete(pop_first(ch.receivers), outcome::closed, std::nullopt);
        while (!ch.senders.empty()) complete(pop_first(ch.senders), outcome::panic, std::nullopt);
        return {};
    }

    /// Goroutine `g` blocks on every case of `op` (none can proceed).
    void block(int g, const operation& op) {
        blocked_[std::size_t(g)] = true;
        for (std::size_t i = 0; i < op.cases.size(); ++i) {
            const select_case_spec& k = op.cases[i];
            channel& ch = channels_[std::size_t(k.channel)];
            (k.is_send ? ch.senders : ch.receivers).push_back({g, int(i), k.value});
        }
    }

    bool blocked(int g) const { return blocked_[std::size_t(g)]; }
    /// The outcome a counterpart gave blocked goroutine `g`, once it has one.
    const std::optional<outcome>& completion(int g) const { return done_[std::size_t(g)]; }
    outcome take_completion(int g) {
        outcome o = *done_[std::size_t(g)];
        done_[std::size_t(g)].reset();
        return o;
    }

private:
    static blocked_case pop_first(std::deque<blocked_case>& q) {
        blocked_case b = q.front();
        q.pop_front();
        return b;
    }

    /// A blocked goroutine's case fired: it stops waiting on all its cases.
    void complete(const blocked_case& b, outcome::status_t s, std::optional<int> value) {
        blocked_[std::size_t(b.goroutine)] = false;
        done_[std::size_t(b.goroutine)] = outcome{s, b.case_index, value};
        for (channel& ch : channels_)
            for (auto* q : {&ch.senders, &ch.receivers})
                std::erase_if(*q, [&](const blocked_case& x) { return x.goroutine == b.goroutine; });
    }

    std::vector<channel> channels_;
    std::vector<bool> blocked_;
    std::vector<std::optional<outcome>> done_;
};

}  // namespace csp_fuzz
