// The receive queue alone: chunks in, views out, finished chunks given back in order.
#include <cnetmod/engine/detail/receive_queue.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace cnetmod::detail;

namespace {

struct chunks {
    std::vector<std::string> storage;
    received_chunk make(std::string text, int id) {
        storage.push_back(std::move(text));
        auto& s = storage.back();
        return {reinterpret_cast<std::byte*>(s.data()), s.size(), id};
    }
};

std::string text(std::span<std::byte> v) {
    return {reinterpret_cast<const char*>(v.data()), v.size()};
}

}  // namespace

TEST(receive_queue, starts_empty) {
    receive_queue q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.bytes(), 0u);
    EXPECT_TRUE(q.front().empty());
    EXPECT_EQ(q.front_buffer_id(), -1);
}

TEST(receive_queue, front_is_the_oldest_chunk_and_consume_walks_across_chunks) {
    chunks c;
    c.storage.reserve(3);
    receive_queue q;
    q.push(c.make("hello", 4));
    q.push(c.make(" wide", 9));
    q.push(c.make(" world", -1));
    EXPECT_EQ(q.bytes(), 16u);
    EXPECT_EQ(text(q.front()), "hello");
    EXPECT_EQ(q.front_buffer_id(), 4);

    std::vector<int> released;
    auto release = [&](const received_chunk& r) { released.push_back(r.buffer_id); };
    q.consume(3, release);
    EXPECT_EQ(text(q.front()), "lo") << "a partly consumed chunk shows its rest";
    EXPECT_TRUE(released.empty());
    q.consume(5, release);  // "lo" and " wi"
    EXPECT_EQ(released, std::vector<int>{4});
    EXPECT_EQ(text(q.front()), "de");
    EXPECT_EQ(q.front_buffer_id(), 9);
    EXPECT_EQ(q.bytes(), 8u);
    q.consume(100, release);  // more than there is: everything, no further
    EXPECT_EQ(released, (std::vector<int>{4, 9, -1}));
    EXPECT_TRUE(q.empty());
    EXPECT_TRUE(q.front().empty());
}

TEST(receive_queue, front_is_writable_in_place) {
    chunks c;
    receive_queue q;
    q.push(c.make("abc", 1));
    q.front()[1] = std::byte{'X'};
    EXPECT_EQ(c.storage[0], "aXc") << "a payload is unmasked where it landed";
}

TEST(receive_queue, clear_gives_back_every_unconsumed_chunk) {
    chunks c;
    c.storage.reserve(3);
    receive_queue q;
    q.push(c.make("one", 1));
    q.push(c.make("two", 2));
    q.push(c.make("three", 3));
    std::vector<int> released;
    auto release = [&](const received_chunk& r) { released.push_back(r.buffer_id); };
    q.consume(4, release);  // chunk 1 done, chunk 2 started
    q.clear(release);
    EXPECT_EQ(released, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(q.empty());
    q.push(c.make("one", 7));
    EXPECT_EQ(text(q.front()), "one") << "usable again after a clear";
}

TEST(receive_queue, keeps_its_chunk_list_when_drained) {
    chunks c;
    c.storage.reserve(64);
    receive_queue q;
    for (int i = 0; i < 64; ++i) q.push(c.make("x", i));
    q.consume(64, [](const received_chunk&) {});
    EXPECT_TRUE(q.empty());
    EXPECT_GE(q.capacity(), 64u) << "a pooled queue allocates nothing on the next burst";
}
