//! Group commit: concurrent writers of one store are coalesced into one atomic sled batch
//! (and, in durable mode, one flush).
//!
//! A writer enqueues its operation. If no leader is active, it becomes the leader and
//! processes the queue inline: the store turns the queued operations (the oldest
//! [`MAX_GROUP`] of them) into one batch, applies it, flushes, and answers each
//! operation. Writers that arrive meanwhile only enqueue and wait for their answer. When
//! the leader has answered its group and more work is waiting, it hands leadership to the
//! store's writer thread and returns to its caller, so no caller's latency depends on
//! other callers' load; the writer thread takes queued operations (up to [`MAX_GROUP`])
//! as one group, again and again, until the queue is empty.
//!
//! So a lone writer pays no thread hand-off, and under contention nearly every group is
//! processed by one thread. That keeps the write path's allocations (the batch, sled's
//! node copies) in one allocator arena: with the leader rotating over 16 caller threads,
//! glibc's per-thread arenas held twice the peak RSS of a single writer (measured with
//! `examples/memory.rs`). It also keeps sled's blocking I/O off async runtime workers.
//!
//! The writer thread holds only a weak reference to the store (it waits on the queue, not
//! on the store) and ends after a second without work or when the store is gone; a later
//! hand-off starts a new one. Leadership never spans an `.await`,
//! so a cancelled caller cannot strand the queue; a panic while processing resets the
//! leader flag and drops the group's answer channels (each waiting caller gets an error).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How long the writer thread waits for a hand-off before it ends.
const WRITER_IDLE: Duration = Duration::from_secs(1);
/// How long the writer thread, its queue empty, keeps leadership for the callers it has
/// just answered to come back with their next operations (they only enqueue meanwhile;
/// nobody waits on the linger).
const WRITER_LINGER: Duration = Duration::from_millis(1);

/// The store side of group commit.
pub(crate) trait GroupProcessor: Send + Sync + 'static {
    /// One queued operation, including the channel its answer goes to.
    type Op: Send + 'static;
    /// The queue of this store.
    fn queue(&self) -> &WriteQueue<Self::Op>;
    /// Applies a group of operations as one atomic unit and answers each.
    fn process_group(&self, ops: Vec<Self::Op>);
}

/// The pending operations of one store, whether a leader is at work, and the store's
/// writer thread.
pub(crate) struct WriteQueue<Op> {
    shared: Arc<Shared<Op>>,
}

/// The part of the queue the writer thread shares.
struct Shared<Op> {
    state: Mutex<QueueState<Op>>,
    /// Wakes the writer thread when leadership is handed to it.
    handoff: Condvar,
}

struct QueueState<Op> {
    pending: Vec<Op>,
    leader_active: bool,
    /// Leadership was handed to the writer thread, which has not taken it yet.
    handed_off: bool,
    /// A writer thread exists (waiting or working).
    thread_running: bool,
    /// The writer thread leads with an empty queue, waiting for operations.
    lingering: bool,
}

impl<Op> Default for WriteQueue<Op> {
    fn default() -> Self {
        WriteQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(QueueState {
                    pending: Vec::new(),
                    leader_active: false,
                    handed_off: false,
                    thread_running: false,
                    lingering: false,
                }),
                handoff: Condvar::new(),
            }),
        }
    }
}

impl<Op> WriteQueue<Op> {
    fn lock(&self) -> MutexGuard<'_, QueueState<Op>> {
        self.shared.lock()
    }
}

impl<Op> Shared<Op> {
    fn lock(&self) -> MutexGuard<'_, QueueState<Op>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Resets the leader flag if processing panics.
struct LeaderGuard<'a, P: GroupProcessor> {
    processor: &'a P,
    armed: bool,
}

impl<P: GroupProcessor> Drop for LeaderGuard<'_, P> {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.processor.queue().lock();
            s.leader_active = false;
        }
    }
}

/// Enqueues `op`; if no leader is active, leads one group inline.
pub(crate) fn submit<P: GroupProcessor>(processor: &Arc<P>, op: P::Op) {
    let lead = {
        let mut s = processor.queue().lock();
        s.pending.push(op);
        if s.leader_active {
            if s.lingering {
                processor.queue().shared.handoff.notify_one();
            }
            false
        } else {
            s.leader_active = true;
            true
        }
    };
    if !lead {
        return;
    }
    let mut guard = LeaderGuard {
        processor: processor.as_ref(),
        armed: true,
    };
    let group = take_group(&mut processor.queue().lock().pending);
    processor.process_group(group);
    // The first group (our own operation's, unless more than `MAX_GROUP` were queued
    // before it) is answered. Hand off whatever is still queued.
    let spawn = {
        let mut s = processor.queue().lock();
        if s.pending.is_empty() {
            s.leader_active = false;
            guard.armed = false;
            return;
        }
        s.handed_off = true;
        let spawn = !s.thread_running;
        s.thread_running = true;
        spawn
    };
    guard.armed = false;
    if spawn {
        let weak = Arc::downgrade(processor);
        let shared = Arc::clone(&processor.queue().shared);
        let started = std::thread::Builder::new()
            .name("atps-writer".into())
            .spawn(move || writer_thread(weak, shared));
        if started.is_err() {
            // No thread: lead here instead, as before there was a writer thread.
            processor.queue().lock().thread_running = false;
            take_handoff(processor.as_ref());
            lead_loop(processor.as_ref());
        }
    } else {
        processor.queue().shared.handoff.notify_one();
    }
}

/// The most operations one group takes; the rest wait for the next group, in order.
///
/// sled's memory grows with the size of an atomic batch. Measured with 16 OS threads
/// writing 1M puts (`examples/memory`, PERFORMANCE.md): unbounded groups (up to 16
/// operations) peaked at 197-201 MB against 189-190 MB for one writer; groups of at most
/// 8 at 183-189 MB, with more throughput (15.7-16.6k puts/s against 14.0-15.9k) and a
/// third less disk; groups of at most 4 at 180-183 MB but 13.6-13.9k puts/s. 8 keeps most
/// of what a group saves on flushes.
const MAX_GROUP: usize = 8;

/// Takes the next group: the oldest [`MAX_GROUP`] pending operations.
fn take_group<Op>(pending: &mut Vec<Op>) -> Vec<Op> {
    if pending.len() <= MAX_GROUP {
        std::mem::take(pending)
    } else {
        pending.drain(..MAX_GROUP).collect()
    }
}

/// Claims a pending hand-off (the caller then leads); false when there was none.
fn take_handoff<P: GroupProcessor>(processor: &P) -> bool {
    let mut s = processor.queue().lock();
    std::mem::replace(&mut s.handed_off, false)
}

/// Clears `thread_running` if the writer thread ends by a panic.
struct ThreadGuard<Op> {
    shared: Arc<Shared<Op>>,
    armed: bool,
}

impl<Op> Drop for ThreadGuard<Op> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().thread_running = false;
        }
    }
}

/// The store's writer thread: leads every group handed to it; ends after
/// [`WRITER_IDLE`] without a hand-off, or when the store is gone.
fn writer_thread<P: GroupProcessor>(weak: Weak<P>, shared: Arc<Shared<P::Op>>) {
    let mut running = ThreadGuard {
        shared: Arc::clone(&shared),
        armed: true,
    };
    loop {
        {
            let mut s = shared.lock();
            if !s.handed_off {
                s = shared
                    .handoff
                    .wait_timeout(s, WRITER_IDLE)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            if s.handed_off {
                s.handed_off = false;
            } else {
                // Idle: end. A later hand-off sees `thread_running` false (cleared under
                // this same lock) and starts a new thread.
                s.thread_running = false;
                running.armed = false;
                return;
            }
        }
        let Some(processor) = weak.upgrade() else {
            // The store is gone: its queued operations went with it (their callers'
            // answer channels are dropped, so each gets an error).
            let mut s = shared.lock();
            s.leader_active = false;
            s.thread_running = false;
            running.armed = false;
            return;
        };
        lead_lingering(processor.as_ref(), &shared);
    }
}

/// [`lead_loop`] for the writer thread: with the queue empty it keeps leadership for up
/// to [`WRITER_LINGER`] before it resigns, so that under steady contention the groups stay
/// on this thread instead of going to whichever caller comes next.
fn lead_lingering<P: GroupProcessor>(processor: &P, shared: &Shared<P::Op>) {
    let mut guard = LeaderGuard {
        processor,
        armed: true,
    };
    loop {
        let group = {
            let mut s = shared.lock();
            if s.pending.is_empty() {
                s.lingering = true;
                s = shared
                    .handoff
                    .wait_timeout(s, WRITER_LINGER)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0);
                s.lingering = false;
                if s.pending.is_empty() {
                    s.leader_active = false;
                    guard.armed = false;
                    return;
                }
            }
            take_group(&mut s.pending)
        };
        processor.process_group(group);
    }
}

/// Processes groups until the queue is empty, then resigns.
fn lead_loop<P: GroupProcessor>(processor: &P) {
    let mut guard = LeaderGuard {
        processor,
        armed: true,
    };
    loop {
        let group = {
            let mut s = processor.queue().lock();
            if s.pending.is_empty() {
                s.leader_active = false;
                guard.armed = false;
                return;
            }
            take_group(&mut s.pending)
        };
        processor.process_group(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_takes_the_oldest_operations_up_to_the_bound() {
        let mut pending: Vec<usize> = (0..MAX_GROUP * 2 + 3).collect();
        let mut groups = Vec::new();
        while !pending.is_empty() {
            groups.push(take_group(&mut pending));
        }
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| g.len() <= MAX_GROUP));
        let order: Vec<usize> = groups.concat();
        assert_eq!(order, (0..MAX_GROUP * 2 + 3).collect::<Vec<_>>());
        let mut few = vec![1, 2];
        assert_eq!(take_group(&mut few), vec![1, 2]);
        assert!(few.is_empty());
    }
}
