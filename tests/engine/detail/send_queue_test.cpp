// The send queue alone: what is queued, what one send gathers, how a
// partial send resumes, and what is given back when.
#include <cnetmod/engine/detail/send_queue.hpp>

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <string>
#include <vector>

using namespace cnetmod;
using namespace cnetmod::detail;

namespace {

void put(send_queue& q, std::string_view text) {
    auto space = q.append_space(text.size());
    std::memcpy(space.data(), text.data(), text.size());
}

// The bytes the next send would carry.
std::string gathered(send_queue& q) {
    std::string out;
    for (const iovec& v : q.prepare_send().iov) out.append(static_cast<const char*>(v.iov_base), v.iov_len);
    return out;
}

auto no_release = [](int) { FAIL() << "nothing received was queued"; };

}  // namespace

TEST(send_queue, copies_back_to_back_are_one_iovec) {
    send_queue q;
    put(q, "hello ");
    put(q, "world");
    EXPECT_EQ(q.bytes(), 11u);
    q.start_batch();
    auto next = q.prepare_send();
    EXPECT_EQ(next.fixed, nullptr);
    ASSERT_EQ(next.iov.size(), 1u);
    EXPECT_EQ(gathered(q), "hello world");
}

TEST(send_queue, shared_buffers_are_referenced_in_order) {
    send_queue q;
    put(q, "a");
    auto shared = shared_buffer::copy_of(std::as_bytes(std::span("bcd", 3)));
    q.append(shared);
    put(q, "e");
    q.start_batch();
    EXPECT_EQ(q.prepare_send().iov.size(), 3u);
    EXPECT_EQ(gathered(q), "abcde");
    EXPECT_EQ(q.prepare_send().iov[1].iov_base, static_cast<const void*>(shared.bytes().data()))
        << "referenced, not copied";
}

TEST(send_queue, bytes_queued_during_a_batch_fill_the_other_arena) {
    send_queue q;
    put(q, "first");
    q.start_batch();
    const auto iov = q.prepare_send().iov;
    const void* sending = iov[0].iov_base;
    // Enough to grow the filling arena many times over: the batch's bytes must not move.
    for (int i = 0; i < 1000; ++i) put(q, std::string(100, 'n'));
    EXPECT_EQ(gathered(q), "first");
    EXPECT_EQ(q.prepare_send().iov[0].iov_base, sending);
    EXPECT_EQ(q.bytes(), 5u + 100'000u);
    q.advance(5, no_release);
    EXPECT_TRUE(q.batch_sent());
    q.end_batch();
    EXPECT_TRUE(q.has_queued());
    q.start_batch();
    EXPECT_EQ(gathered(q), std::string(100'000, 'n'));
}

TEST(send_queue, a_partial_send_resumes_where_the_kernel_stopped) {
    send_queue q;
    put(q, "abc");
    q.append(shared_buffer::copy_of(std::as_bytes(std::span("defgh", 5))));
    put(q, "ij");
    q.start_batch();
    q.advance(4, no_release);  // "abc" and "d"
    EXPECT_FALSE(q.batch_sent());
    EXPECT_EQ(gathered(q), "efghij");
    EXPECT_EQ(q.bytes(), 6u);
    q.advance(6, no_release);
    EXPECT_TRUE(q.batch_sent());
    EXPECT_EQ(q.bytes(), 0u);
    q.end_batch();
    EXPECT_TRUE(q.idle());
}

TEST(send_queue, received_bytes_are_given_back_once_sent) {
    send_queue q;
    std::string received = "forwarded";
    q.append_received(reinterpret_cast<const std::byte*>(received.data()), received.size(), 17);
    q.start_batch();
    EXPECT_EQ(gathered(q), "forwarded");
    std::vector<int> released;
    auto release = [&](int id) { released.push_back(id); };
    q.advance(5, release);
    EXPECT_TRUE(released.empty()) << "still partly unsent";
    q.advance(4, release);
    EXPECT_EQ(released, std::vector<int>{17});
}

TEST(send_queue, discard_drops_only_what_is_not_in_a_batch) {
    send_queue q;
    put(q, "in flight");
    q.start_batch();
    put(q, "queued");
    std::string received = "rx";
    q.append_received(reinterpret_cast<const std::byte*>(received.data()), received.size(), 3);
    std::vector<int> released;
    EXPECT_EQ(q.discard_queued([&](int id) { released.push_back(id); }), 8u);
    EXPECT_EQ(released, std::vector<int>{3});
    EXPECT_EQ(q.bytes(), 9u);
    EXPECT_FALSE(q.has_queued());
    EXPECT_EQ(gathered(q), "in flight");
}

TEST(send_queue, drop_all_keeps_a_batch_the_kernel_may_still_read) {
    send_queue q;
    put(q, "batch");
    q.start_batch();
    put(q, "more");
    q.drop_all(true, no_release);
    EXPECT_EQ(q.bytes(), 0u);
    EXPECT_TRUE(q.in_batch()) << "its memory stays until the send completes";
    q.drop_all(false, no_release);
    EXPECT_TRUE(q.idle());
}

TEST(send_queue, a_batch_of_records_is_filled_by_the_caller) {
    send_queue q;
    put(q, "plaintext");
    std::string plain;
    const std::size_t n = q.take_queued(
        [&](std::span<const std::byte> b) { plain.append(reinterpret_cast<const char*>(b.data()), b.size()); },
        no_release);
    EXPECT_EQ(n, 9u);
    EXPECT_EQ(plain, "plaintext");
    EXPECT_EQ(q.bytes(), 0u);
    auto records = q.start_batch_of(4);
    std::memcpy(records.data(), "REC!", 4);
    EXPECT_EQ(q.bytes(), 4u);
    EXPECT_EQ(gathered(q), "REC!");
}

TEST(send_queue, one_send_gathers_at_most_iov_max_segments) {
    send_queue q;
    for (int i = 0; i < IOV_MAX + 10; ++i) q.append(shared_buffer::copy_of(std::as_bytes(std::span("x", 1))));
    q.start_batch();
    EXPECT_EQ(q.prepare_send().iov.size(), static_cast<std::size_t>(IOV_MAX));
    q.advance(IOV_MAX, no_release);
    EXPECT_EQ(q.prepare_send().iov.size(), 10u);
}

TEST(send_queue, reset_keeps_arenas_up_to_the_given_size) {
    send_queue q;
    put(q, std::string(1000, 'a'));
    q.start_batch();
    put(q, std::string(1 << 20, 'b'));
    q.drop_all(false, no_release);
    EXPECT_GE(q.capacity(), (1u << 20));
    q.reset(64 * 1024);
    EXPECT_LE(q.capacity(), 64u * 1024) << "the large arena went back to the heap";
    EXPECT_GT(q.capacity(), 0u) << "the small one is kept for the next burst";
}
