// csp/detail/ring_buffer.hpp - a FIFO of T in one contiguous allocation.
//
// Used for run queues (grows by doubling, so steady state allocates
// nothing); a buffered channel's values live in a channel_ring. T only
// needs to be move-constructible: slots are raw storage and values are
// constructed and destroyed in place. Not synchronised.
//
// The storage comes from the frame allocator's per-thread caches
// (frame_allocator.hpp) when it is small.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

#include "frame_allocator.hpp"

namespace csp::detail {

template <class T>
class ring_buffer {
public:
    explicit ring_buffer(std::size_t capacity = 0) : capacity_(capacity) {
        if (capacity_) slots_ = allocate(capacity_);
    }
    ring_buffer(const ring_buffer&) = delete;
    ring_buffer& operator=(const ring_buffer&) = delete;
    ~ring_buffer() {
        clear();
        if (slots_) deallocate(slots_, capacity_);
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    bool empty() const noexcept { return size_ == 0; }
    bool full() const noexcept { return size_ == capacity_; }

    /// Precondition: !full(). If T's constructor throws, nothing changes.
    template <class... Args>
    void emplace_back(Args&&... args) {
        std::size_t tail = head_ + size_;
        if (tail >= capacity_) tail -= capacity_;
        ::new (static_cast<void*>(slots_ + tail)) T(std::forward<Args>(args)...);
        ++size_;
    }

    /// Precondition: !empty().
    T pop_front() noexcept(std::is_nothrow_move_constructible_v<T>) {
        T* slot = slots_ + head_;
        T value(std::move(*slot));
        std::destroy_at(slot);
        if (++head_ == capacity_) head_ = 0;
        --size_;
        return value;
    }

    /// Doubles the capacity (at least 16), moving the values over.
    void grow() {
        std::size_t bigger = capacity_ ? capacity_ * 2 : 16;
        T* fresh = allocate(bigger);
        std::size_t n = size_;
        for (std::size_t i = 0; i < n; ++i) ::new (static_cast<void*>(fresh + i)) T(pop_front());
        if (slots_) deallocate(slots_, capacity_);
        slots_ = fresh;
        capacity_ = bigger;
        head_ = 0;
        size_ = n;
    }

    void clear() noexcept {
        while (size_) {
            std::destroy_at(slots_ + head_);
            if (++head_ == capacity_) head_ = 0;
            --size_;
        }
        head_ = 0;
    }

private:
    // Frames are aligned for any fundamental type; an over-aligned T goes
    // to std::allocator.
    static constexpr bool cached = alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;

    static T* allocate(std::size_t n) {
        if constexpr (cached) {
            if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
            return static_cast<T*>(allocate_frame(n * sizeof(T)));
        } else {
            return std::allocator<T>().allocate(n);
        }
    }
    static void deallocate(T* p, std::size_t n) noexcept {
        if constexpr (cached) deallocate_frame(p, n * sizeof(T));
        else std::allocator<T>().deallocate(p, n);
    }

    T* slots_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace csp::detail
