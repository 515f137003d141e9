// IntrusiveList: a doubly linked list threaded through its elements (no allocation per element),
// for the cache's LRU pools and per-vDisk entry lists. An element may sit in several lists at
// once through several links. The list does not own its elements; an element must be removed
// before it is destroyed.
#pragma once

#include <cstddef>

#include "base/assert.h"

namespace weft::cache {

template <typename T>
struct ListLink {
  T* previous = nullptr;  // Towards the front (most recently used).
  T* next = nullptr;      // Towards the back (least recently used).
};

template <typename T, ListLink<T> T::*kLink>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() { WEFT_ASSERT(size_ == 0); }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T* front() const { return front_; }
  T* back() const { return back_; }
  static T* Next(const T& item) { return (item.*kLink).next; }
  static T* Previous(const T& item) { return (item.*kLink).previous; }

  void PushFront(T& item) {
    ListLink<T>& link = item.*kLink;
    WEFT_ASSERT(link.previous == nullptr && link.next == nullptr && front_ != &item);
    link.next = front_;
    if (front_ != nullptr) (front_->*kLink).previous = &item;
    front_ = &item;
    if (back_ == nullptr) back_ = &item;
    ++size_;
  }

  void Remove(T& item) {
    ListLink<T>& link = item.*kLink;
    WEFT_ASSERT(size_ > 0);
    if (link.previous != nullptr) {
      (link.previous->*kLink).next = link.next;
    } else {
      WEFT_ASSERT(front_ == &item);
      front_ = link.next;
    }
    if (link.next != nullptr) {
      (link.next->*kLink).previous = link.previous;
    } else {
      WEFT_ASSERT(back_ == &item);
      back_ = link.previous;
    }
    link = ListLink<T>{};
    --size_;
  }

  void MoveToFront(T& item) {
    if (front_ == &item) return;
    Remove(item);
    PushFront(item);
  }

 private:
  T* front_ = nullptr;
  T* back_ = nullptr;
  size_t size_ = 0;
};

}  // namespace weft::cache
