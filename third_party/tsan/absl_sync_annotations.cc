// Makes abseil's synchronisation visible to ThreadSanitizer (--config=tsan).
//
// Debian's libabsl is built without -fsanitize=thread, so TSan cannot see the
// atomics inside absl::Mutex, CondVar and Notification and reports every pair
// of accesses ordered only by them as a data race. This file, linked into
// every binary of a TSan build through //third_party:absl, interposes those
// functions: each one calls the library's own (found with dlsym(RTLD_NEXT))
// and tells TSan what it did, as an instrumented abseil would:
//   - acquiring a mutex (Lock, TryLock, LockWhen..., after CondVar waits and
//     Awaits) is __tsan_acquire(mutex); releasing it is __tsan_release(mutex);
//   - conditions evaluated inside the library (Await, LockWhen) acquire the
//     mutex before and release it after, since the library holds it while it
//     evaluates them and may let go of it right after;
//   - Notify releases the notification; a wait that saw it acquires it.
// Notification::HasBeenNotified is inline and cannot be interposed. abseil's
// own deadlock detection is switched off (TSan detects lock-order inversions,
// and the library's cycle graph would race invisibly). The file itself is
// compiled without instrumentation.
//
// Only in TSan builds (config_setting //third_party:tsan); a missing symbol
// (another abseil version) aborts with its name.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

template <typename F>
F Next(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    fprintf(stderr, "absl_sync_annotations: libabsl has no %s (another abseil version?)\n", symbol);
    abort();
  }
  return reinterpret_cast<F>(f);
}

#define DCTK_NEXT(type, symbol) static const auto next = Next<type>(symbol)

// A condition that the library evaluates while it holds `mu`.
struct Held {
  const absl::Condition* cond;
  absl::Mutex* mu;
};
bool EvalHeld(Held* h) {
  __tsan_acquire(h->mu);
  const bool met = h->cond->Eval();
  __tsan_release(h->mu);  // the library may let go of `mu` next (condition false)
  return met;
}

[[maybe_unused]] const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  DCTK_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  next(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  DCTK_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  next(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  DCTK_NEXT(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = next(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  DCTK_NEXT(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = next(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  DCTK_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  next(this);
}

void Mutex::ReaderUnlock() {
  DCTK_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  next(this);
}

void Mutex::Await(const Condition& cond) {
  DCTK_NEXT(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Held h{&cond, this};
  __tsan_release(this);
  next(this, Condition(EvalHeld, &h));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Duration),
            "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Held h{&cond, this};
  __tsan_release(this);
  const bool met = next(this, Condition(EvalHeld, &h), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Time),
            "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Held h{&cond, this};
  __tsan_release(this);
  const bool met = next(this, Condition(EvalHeld, &h), deadline);
  __tsan_acquire(this);
  return met;
}

void Mutex::LockWhen(const Condition& cond) {
  DCTK_NEXT(void (*)(Mutex*, const Condition&),
            "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Held h{&cond, this};
  next(this, Condition(EvalHeld, &h));
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  DCTK_NEXT(void (*)(Mutex*, const Condition&),
            "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Held h{&cond, this};
  next(this, Condition(EvalHeld, &h));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Duration),
            "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Held h{&cond, this};
  const bool met = next(this, Condition(EvalHeld, &h), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Time),
            "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Held h{&cond, this};
  const bool met = next(this, Condition(EvalHeld, &h), deadline);
  __tsan_acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Duration),
            "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Held h{&cond, this};
  const bool met = next(this, Condition(EvalHeld, &h), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  DCTK_NEXT(bool (*)(Mutex*, const Condition&, Time),
            "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Held h{&cond, this};
  const bool met = next(this, Condition(EvalHeld, &h), deadline);
  __tsan_acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  DCTK_NEXT(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  next(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  DCTK_NEXT(bool (*)(CondVar*, Mutex*, Duration),
            "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool timed_out = next(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  DCTK_NEXT(bool (*)(CondVar*, Mutex*, Time),
            "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool timed_out = next(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  DCTK_NEXT(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(this);
  next(this);
}

void Notification::WaitForNotification() const {
  DCTK_NEXT(void (*)(const Notification*),
            "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  next(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  DCTK_NEXT(bool (*)(const Notification*, Duration),
            "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = next(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  DCTK_NEXT(bool (*)(const Notification*, Time),
            "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = next(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
