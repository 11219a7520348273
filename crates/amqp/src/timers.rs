//! One timer task per broker: queue wake-ups (message and queue expiry) and delayed messages
//! (the delayed-message exchange) at their times.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use crate::message::{now_ms, Message};
use crate::queue::Queue;
use crate::vhost::VHost;

/// What happens when a timer goes off.
pub enum Timer {
    Queue(Weak<Queue>),
    /// A message of a delayed-message exchange whose delay has passed.
    Delayed {
        vhost: Weak<VHost>,
        exchange: String,
        message: Arc<Message>,
        /// Its entry in the vhost's delayed log, when it is kept on disk.
        offset: Option<i64>,
    },
}

struct Entry {
    at_ms: i64,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

#[derive(Clone)]
pub struct Timers {
    tx: mpsc::UnboundedSender<(i64, Timer)>,
}

impl Timers {
    /// Starts the timer task on the current runtime.
    pub fn start() -> (Timers, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Timers { tx }, tokio::spawn(run(rx)))
    }

    pub fn at(&self, at_ms: i64, timer: Timer) {
        let _ = self.tx.send((at_ms, timer));
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<(i64, Timer)>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next = heap.peek().map(|Reverse(e)| e.at_ms);
        let received = match next {
            None => rx.recv().await,
            Some(at) => {
                let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                tokio::select! {
                    r = rx.recv() => r,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {
                        fire_due(&mut heap);
                        continue;
                    }
                }
            }
        };
        match received {
            Some((at_ms, timer)) => {
                seq += 1;
                heap.push(Reverse(Entry { at_ms, seq, timer }));
            }
            None => return,
        }
        fire_due(&mut heap);
    }
}

fn fire_due(heap: &mut BinaryHeap<Reverse<Entry>>) {
    let now = now_ms();
    while heap.peek().is_some_and(|Reverse(e)| e.at_ms <= now) {
        let Some(Reverse(entry)) = heap.pop() else {
            break;
        };
        match entry.timer {
            Timer::Queue(q) => {
                if let Some(q) = q.upgrade() {
                    q.on_timer();
                }
            }
            Timer::Delayed {
                vhost,
                exchange,
                message,
                offset,
            } => {
                if let Some(v) = vhost.upgrade() {
                    v.deliver_delayed(&exchange, message, offset);
                }
            }
        }
    }
}
