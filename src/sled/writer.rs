//! Group commit: concurrent writers of one store are coalesced into one atomic sled batch
//! (and, in durable mode, one flush).
//!
//! A writer enqueues its operation. If no leader is active, it becomes the leader: it takes
//! every queued operation, lets the store turn them into one batch, applies it, flushes, and
//! answers each operation. Writers that arrive meanwhile only enqueue and wait for their
//! answer; the leader's next group takes them all at once, so a single flush covers many
//! writes. A leader handles its own group inline; if more work is waiting afterwards, it
//! hands leadership to a blocking task and returns to its caller, so no caller's latency
//! depends on other callers' load.
//!
//! Leadership never spans an `.await`, so a cancelled caller cannot strand the queue; a
//! panic while processing resets the leader flag and drops the group's answer channels
//! (each waiting caller gets an error).

use std::sync::{Arc, Mutex, MutexGuard};

/// The store side of group commit.
pub(crate) trait GroupProcessor: Send + Sync + 'static {
    /// One queued operation, including the channel its answer goes to.
    type Op: Send + 'static;
    /// The queue of this store.
    fn queue(&self) -> &WriteQueue<Self::Op>;
    /// Applies a group of operations as one atomic unit and answers each.
    fn process_group(&self, ops: Vec<Self::Op>);
}

/// The pending operations of one store and whether a leader is at work.
pub(crate) struct WriteQueue<Op> {
    state: Mutex<QueueState<Op>>,
}

struct QueueState<Op> {
    pending: Vec<Op>,
    leader_active: bool,
}

impl<Op> Default for WriteQueue<Op> {
    fn default() -> Self {
        WriteQueue {
            state: Mutex::new(QueueState {
                pending: Vec::new(),
                leader_active: false,
            }),
        }
    }
}

impl<Op> WriteQueue<Op> {
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
    let group = std::mem::take(&mut processor.queue().lock().pending);
    processor.process_group(group);
    // Our own operation is answered. Hand off whatever arrived meanwhile.
    {
        let mut s = processor.queue().lock();
        if s.pending.is_empty() {
            s.leader_active = false;
            guard.armed = false;
            return;
        }
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            guard.armed = false;
            let p = Arc::clone(processor);
            handle.spawn_blocking(move || lead_loop(&p));
        }
        Err(_) => {
            guard.armed = false;
            lead_loop(processor);
        }
    }
}

/// Processes groups until the queue is empty, then resigns.
fn lead_loop<P: GroupProcessor>(processor: &Arc<P>) {
    let mut guard = LeaderGuard {
        processor: processor.as_ref(),
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
            std::mem::take(&mut s.pending)
        };
        processor.process_group(group);
    }
}
