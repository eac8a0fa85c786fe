// csp/detail/small_buffer.hpp - an array that lives on the stack up to N elements.
#pragma once

#include <array>
#include <cstddef>
#include <memory>

namespace csp::detail {

/// n trivially-copyable T's: in place when n <= N, on the heap beyond.
template <class T, std::size_t N>
class small_buffer {
public:
    explicit small_buffer(std::size_t n) : size_(n) {
        if (n > N) heap_ = std::make_unique<T[]>(n);
    }
    T* data() noexcept { return heap_ ? heap_.get() : inline_.data(); }
    T& operator[](std::size_t i) noexcept { return data()[i]; }
    std::size_t size() const noexcept { return size_; }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size_; }

private:
    std::size_t size_;
    std::array<T, N> inline_;
    std::unique_ptr<T[]> heap_;
};

}  // namespace csp::detail
