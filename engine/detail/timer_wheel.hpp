// A hierarchical timer wheel for the deadlines of one core (idle timeouts,
// handshake, request and close deadlines, send timeouts): arming and
// disarming are O(1) list operations and cost the kernel nothing; the loop
// waits at most until next_due() and then advances the wheel to the clock.
// It knows ticks, not clocks or rings: io_context feeds it milliseconds.
//
// Level L has 64 slots of 64^L ticks each; an entry sits at the level of the
// highest bit in which its due tick differs from the wheel's current tick, so
// eleven levels cover every 64-bit tick (days are as cheap as milliseconds).
// When the wheel reaches a slot above level 0, that slot's entries move down
// to finer levels; level 0 slots hold entries due at exactly one tick.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace cnetmod::detail {

// A deadline a caller embeds in its own state; the wheel links it in place.
// `fire` runs once when the due tick is reached, with the entry already
// disarmed, so it may re-arm the entry or destroy its owner.
struct timer_entry {
    using callback = void (*)(timer_entry* self);

    timer_entry* prev = nullptr;
    timer_entry* next = nullptr;
    std::uint64_t due_tick = 0;
    callback fire = nullptr;
    std::uint16_t list = no_list;  // which of the wheel's lists holds it

    static constexpr std::uint16_t no_list = 0xffff;

    timer_entry() = default;
    explicit timer_entry(callback f) noexcept : fire(f) {}
    // Copying a linked entry would corrupt its list.
    timer_entry(const timer_entry&) = delete;
    timer_entry& operator=(const timer_entry&) = delete;

    bool armed() const noexcept { return list != no_list; }
};

class timer_wheel {
public:
    static constexpr std::uint64_t never = ~std::uint64_t{0};

    // `now_tick`: the tick the wheel starts at; later ticks only move forward.
    explicit timer_wheel(std::uint64_t now_tick = 0) noexcept : now_(now_tick) {}
    timer_wheel(const timer_wheel&) = delete;
    timer_wheel& operator=(const timer_wheel&) = delete;

    // Arms `e` to fire at `due_tick` (re-arming it if it was armed). A tick
    // not after the current one fires at the next advance().
    void arm(timer_entry& e, std::uint64_t due_tick) noexcept;
    // Unlinks `e` if it is armed; a no-op otherwise.
    void disarm(timer_entry& e) noexcept;

    // Moves the wheel to `now_tick` (an earlier tick is taken as the current
    // one) and fires every entry due by then, in due order. Entries armed for
    // a tick already reached while it fires wait for the next advance(), so a
    // callback that keeps re-arming into the past cannot hold the loop.
    void advance(std::uint64_t now_tick);

    // The earliest tick that may hold an entry (the current tick when some
    // are overdue), or `never` when none is armed. It may be earlier than
    // the earliest due tick by up to a coarse slot's width: reaching it
    // moves that slot's entries to finer levels.
    std::uint64_t next_due() const noexcept;

    std::uint64_t now() const noexcept { return now_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

private:
    static constexpr unsigned slot_bits = 6;
    static constexpr unsigned slots_per_level = 1u << slot_bits;
    static constexpr unsigned levels = (64 + slot_bits - 1) / slot_bits;
    static constexpr std::uint16_t wheel_lists = levels * slots_per_level;
    // Entries due by the current tick, fired at the next advance().
    static constexpr std::uint16_t overdue_list = wheel_lists;
    // Entries being fired by the advance() in progress.
    static constexpr std::uint16_t firing_list = wheel_lists + 1;

    void place(timer_entry& e) noexcept;
    void append(std::uint16_t list, timer_entry& e) noexcept;
    void unlink(timer_entry& e) noexcept;
    void fire_all_firing();
    // The lowest occupied level, or `levels` when the wheel holds nothing.
    unsigned lowest_level() const noexcept;
    std::uint64_t slot_start(unsigned level, unsigned slot) const noexcept;

    std::uint64_t now_;
    std::size_t size_ = 0;
    // Circular doubly linked lists; a head's prev is the list's tail.
    std::array<timer_entry*, wheel_lists + 2> heads_{};
    // One bit per non-empty slot, per level.
    std::array<std::uint64_t, levels> occupied_{};
};

}  // namespace cnetmod::detail
