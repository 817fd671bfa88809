#include <cnetmod/engine/detail/timer_wheel.hpp>

#include <bit>

namespace cnetmod::detail {

void timer_wheel::arm(timer_entry& e, std::uint64_t due_tick) noexcept {
    if (e.armed())
        unlink(e);
    else
        ++size_;
    e.due_tick = due_tick;
    place(e);
}

void timer_wheel::disarm(timer_entry& e) noexcept {
    if (!e.armed()) return;
    unlink(e);
    --size_;
}

// The level is the highest differing bit's group: the entry shares every
// coarser bit with the current tick, so its slot at that level lies ahead.
void timer_wheel::place(timer_entry& e) noexcept {
    if (e.due_tick <= now_) return append(overdue_list, e);
    const unsigned high_bit = 63u - static_cast<unsigned>(std::countl_zero(e.due_tick ^ now_));
    const unsigned level = high_bit / slot_bits;
    const unsigned slot = static_cast<unsigned>(e.due_tick >> (level * slot_bits)) & (slots_per_level - 1);
    occupied_[level] |= std::uint64_t{1} << slot;
    append(static_cast<std::uint16_t>(level * slots_per_level + slot), e);
}

void timer_wheel::append(std::uint16_t list, timer_entry& e) noexcept {
    e.list = list;
    timer_entry*& head = heads_[list];
    if (!head) {
        head = e.prev = e.next = &e;
        return;
    }
    e.next = head;
    e.prev = head->prev;
    head->prev->next = &e;
    head->prev = &e;
}

void timer_wheel::unlink(timer_entry& e) noexcept {
    timer_entry*& head = heads_[e.list];
    if (e.next == &e) {
        head = nullptr;
        if (e.list < wheel_lists)
            occupied_[e.list / slots_per_level] &= ~(std::uint64_t{1} << (e.list % slots_per_level));
    } else {
        e.prev->next = e.next;
        e.next->prev = e.prev;
        if (head == &e) head = e.next;
    }
    e.prev = e.next = nullptr;
    e.list = timer_entry::no_list;
}

unsigned timer_wheel::lowest_level() const noexcept {
    for (unsigned level = 0; level < levels; ++level)
        if (occupied_[level]) return level;
    return levels;
}

// Slots at a level all lie ahead of the current tick within the block of
// the next coarser level that holds it, so the block's base comes from now_.
std::uint64_t timer_wheel::slot_start(unsigned level, unsigned slot) const noexcept {
    const unsigned shift = level * slot_bits;
    const unsigned block_shift = shift + slot_bits;
    const std::uint64_t block_base = block_shift >= 64 ? 0 : (now_ >> block_shift) << block_shift;
    return block_base | (std::uint64_t{slot} << shift);
}

std::uint64_t timer_wheel::next_due() const noexcept {
    if (heads_[overdue_list] || heads_[firing_list]) return now_;
    const unsigned level = lowest_level();
    if (level == levels) return never;
    return slot_start(level, static_cast<unsigned>(std::countr_zero(occupied_[level])));
}

// One entry at a time from the list's head: a callback may disarm (unlink)
// any entry still waiting in it.
void timer_wheel::fire_all_firing() {
    while (timer_entry* e = heads_[firing_list]) {
        unlink(*e);
        --size_;
        e->fire(e);
    }
}

void timer_wheel::advance(std::uint64_t now_tick) {
    while (timer_entry* e = heads_[overdue_list]) {
        unlink(*e);
        append(firing_list, *e);
    }
    for (;;) {
        fire_all_firing();
        const unsigned level = lowest_level();
        if (level == levels) break;
        const unsigned slot = static_cast<unsigned>(std::countr_zero(occupied_[level]));
        const std::uint64_t start = slot_start(level, slot);
        if (start > now_tick) break;
        now_ = start;
        // Entries due at `start` fire in this advance; the rest move to finer levels.
        const auto list = static_cast<std::uint16_t>(level * slots_per_level + slot);
        while (timer_entry* e = heads_[list]) {
            unlink(*e);
            if (e->due_tick <= now_)
                append(firing_list, *e);
            else
                place(*e);
        }
    }
    if (now_tick > now_) now_ = now_tick;
}

}  // namespace cnetmod::detail
