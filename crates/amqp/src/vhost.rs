//! A virtual host: its exchanges, queues and bindings, routing, and what queues ask of it
//! (dead letters, timers, removal).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use amq_protocol::types::FieldTable;
use parking_lot::RwLock;
use tracing::debug;

use crate::core::Core;
use crate::error::AmqpError;
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind};
use crate::message::{now_ms, table_int, Message};
use crate::queue::dead_letter::{is_cycle, DeadLetter};
use crate::queue::settings::QueueSettings;
use crate::queue::store::{QueueLog, Recovered, Stored};
use crate::queue::{Enqueued, Hooks, Queue};
use crate::reply_to::ReplyTo;
use crate::timers::Timer;

/// The exchanges every vhost has (RabbitMQ's defaults).
const BUILT_IN: &[(&str, ExchangeKind, bool)] = &[
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

/// What publishing a message to its queues did.
#[derive(Default)]
pub struct Published {
    /// Some queue refused it (full, reject-publish): a confirm is a nack.
    pub refused: bool,
    /// Disk writes a confirm of a persistent message waits for.
    pub writes: Vec<(Arc<QueueLog>, i64)>,
    /// A queue it went to holds its publishers (`Queue::holds_publishers`).
    pub hold: Option<Arc<Queue>>,
}

pub struct VHost {
    pub name: String,
    pub(crate) core: Arc<Core>,
    me: Weak<VHost>,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    /// Requesters of direct reply-to.
    pub(crate) reply_to: ReplyTo,
    /// Messages of durable delayed-message exchanges waiting for their time, so that
    /// delays survive a restart (entry = the message; due = publish time + `x-delay`).
    delayed_log: Option<Arc<QueueLog>>,
}

impl VHost {
    pub fn new(name: &str, core: Arc<Core>, delayed_log: Option<Arc<QueueLog>>) -> Arc<VHost> {
        let v = Arc::new_cyclic(|me| VHost {
            name: name.to_string(),
            core,
            me: me.clone(),
            exchanges: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
            reply_to: ReplyTo::default(),
            delayed_log,
        });
        {
            let mut ex = v.exchanges.write();
            for (n, kind, internal) in BUILT_IN {
                ex.insert(
                    n.to_string(),
                    Arc::new(Exchange::new(
                        n,
                        *kind,
                        true,
                        false,
                        *internal,
                        FieldTable::default(),
                    )),
                );
            }
        }
        v
    }

    pub fn hooks(&self) -> Weak<dyn Hooks> {
        let w: Weak<dyn Hooks> = self.me.clone();
        w
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    pub fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        let mut all: Vec<Arc<Exchange>> = self.exchanges.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut all: Vec<Arc<Queue>> = self.queues.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    // ---- exchanges -------------------------------------------------------------------

    /// exchange.declare (not passive): creates it, or checks an existing one is the same.
    /// Answers whether it was created.
    pub fn declare_exchange(
        &self,
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Result<bool, AmqpError> {
        let mut exchanges = self.exchanges.write();
        if let Some(existing) = exchanges.get(name) {
            let diff = |what: &str, got: String, have: String| {
                AmqpError::precondition(format!(
                    "inequivalent arg '{what}' for exchange '{name}' in vhost '{}': received '{got}' but current is '{have}'",
                    self.name
                ))
            };
            if existing.kind != kind {
                return Err(diff(
                    "type",
                    kind.as_str().into(),
                    existing.kind.as_str().into(),
                ));
            }
            if existing.durable != durable {
                return Err(diff(
                    "durable",
                    durable.to_string(),
                    existing.durable.to_string(),
                ));
            }
            if existing.auto_delete != auto_delete {
                return Err(diff(
                    "auto_delete",
                    auto_delete.to_string(),
                    existing.auto_delete.to_string(),
                ));
            }
            if existing.internal != internal {
                return Err(diff(
                    "internal",
                    internal.to_string(),
                    existing.internal.to_string(),
                ));
            }
            return Ok(false);
        }
        if kind == ExchangeKind::Delayed && !arguments.contains_key("x-delayed-type") {
            return Err(AmqpError::precondition(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            ));
        }
        exchanges.insert(
            name.to_string(),
            Arc::new(Exchange::new(
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            )),
        );
        Ok(true)
    }

    /// exchange.delete: answers the deleted exchange (to forget it durably if it was).
    pub fn delete_exchange(
        &self,
        name: &str,
        if_unused: bool,
    ) -> Result<Option<Arc<Exchange>>, AmqpError> {
        let mut exchanges = self.exchanges.write();
        let Some(ex) = exchanges.get(name).cloned() else {
            return Ok(None);
        };
        if if_unused {
            let has_bindings = !ex.bindings.read().is_empty()
                || exchanges.values().any(|e| {
                    e.bindings
                        .read()
                        .iter()
                        .any(|b| b.destination == Destination::Exchange(name.to_string()))
                });
            if has_bindings {
                return Err(AmqpError::precondition(format!(
                    "exchange '{name}' in vhost '{}' in use",
                    self.name
                )));
            }
        }
        exchanges.remove(name);
        let me = Destination::Exchange(name.to_string());
        for e in exchanges.values() {
            e.unbind_destination(&me);
        }
        Ok(Some(ex))
    }

    // ---- queues ------------------------------------------------------------------------

    /// Inserts a queue made by the caller; answers the one already there if another
    /// connection created it first.
    pub fn insert_queue(&self, queue: Arc<Queue>) -> Result<Arc<Queue>, Arc<Queue>> {
        let mut queues = self.queues.write();
        if let Some(existing) = queues.get(&queue.name) {
            return Err(existing.clone());
        }
        queues.insert(queue.name.clone(), queue.clone());
        Ok(queue)
    }

    /// Checks a redeclare against the existing queue, as RabbitMQ does.
    pub fn check_equivalent(
        &self,
        q: &Queue,
        durable: bool,
        auto_delete: bool,
        settings: &QueueSettings,
    ) -> Result<(), AmqpError> {
        let diff = |what: &str, got: String, have: String| {
            AmqpError::precondition(format!(
                "inequivalent arg '{what}' for queue '{}' in vhost '{}': received '{got}' but current is '{have}'",
                q.name, self.name
            ))
        };
        if q.durable != durable {
            return Err(diff("durable", durable.to_string(), q.durable.to_string()));
        }
        if q.auto_delete != auto_delete {
            return Err(diff(
                "auto_delete",
                auto_delete.to_string(),
                q.auto_delete.to_string(),
            ));
        }
        let s = &q.settings;
        let num = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        if s.message_ttl != settings.message_ttl {
            return Err(diff(
                "x-message-ttl",
                num(settings.message_ttl),
                num(s.message_ttl),
            ));
        }
        if s.max_length != settings.max_length {
            return Err(diff(
                "x-max-length",
                num(settings.max_length),
                num(s.max_length),
            ));
        }
        if s.max_priority != settings.max_priority {
            return Err(diff(
                "x-max-priority",
                num(settings.max_priority.map(u64::from)),
                num(s.max_priority.map(u64::from)),
            ));
        }
        if s.kind != settings.kind {
            return Err(diff(
                "x-queue-type",
                settings.kind.as_str().into(),
                s.kind.as_str().into(),
            ));
        }
        if s.dead_letter_exchange != settings.dead_letter_exchange {
            return Err(diff(
                "x-dead-letter-exchange",
                settings.dead_letter_exchange.clone().unwrap_or_default(),
                s.dead_letter_exchange.clone().unwrap_or_default(),
            ));
        }
        Ok(())
    }

    /// Removes a queue and its bindings; answers it (its consumers are told by the caller).
    pub fn remove_queue(&self, name: &str) -> Option<Arc<Queue>> {
        let q = self.queues.write().remove(name)?;
        let dest = Destination::Queue(name.to_string());
        let mut emptied = Vec::new();
        for e in self.exchanges.read().values() {
            if e.unbind_destination(&dest) > 0 && e.auto_delete && e.bindings.read().is_empty() {
                emptied.push(e.name.clone());
            }
        }
        for e in emptied {
            let _ = self.delete_exchange(&e, false);
        }
        Some(q)
    }

    /// After a queue left the vhost: tells its consumers (basic.cancel to clients that asked
    /// for it) and deletes its stored messages. Answers how many messages it held.
    pub fn forget(&self, q: Arc<Queue>) -> usize {
        let (consumers, ready) = q.delete();
        for c in consumers {
            c.channel.cancelled_by_server(&c.tag);
        }
        for log in q.log().into_iter().chain(q.spill_log()) {
            self.core.remove_log(log.clone());
        }
        ready
    }

    /// Queues owned by a connection that closed.
    pub fn exclusive_queues_of(&self, connection: u64) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .values()
            .filter(|q| q.exclusive_owner == Some(connection))
            .cloned()
            .collect()
    }

    // ---- bindings ----------------------------------------------------------------------

    pub fn bind(&self, source: &str, b: Binding) -> Result<(), AmqpError> {
        if source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let ex = self
            .exchange(source)
            .ok_or_else(|| self.no_exchange(source))?;
        match &b.destination {
            Destination::Queue(q) if self.queue(q).is_none() => return Err(self.no_queue(q)),
            Destination::Exchange(e) if self.exchange(e).is_none() => {
                return Err(self.no_exchange(e))
            }
            _ => {}
        }
        ex.bind(b);
        Ok(())
    }

    /// Whether a binding from `source` is stored with the definitions: both its ends are
    /// durable.
    pub fn binding_is_durable(&self, source: &str, b: &Binding) -> bool {
        let durable_source = self.exchange(source).is_some_and(|e| e.durable);
        durable_source
            && match &b.destination {
                Destination::Queue(q) => self.queue(q).is_some_and(|q| q.durable),
                Destination::Exchange(e) => self.exchange(e).is_some_and(|e| e.durable),
            }
    }

    /// Removes a binding; answers whether it existed. An auto-delete exchange left without
    /// bindings is deleted.
    pub fn unbind(&self, source: &str, b: &Binding) -> Result<bool, AmqpError> {
        if source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let ex = self
            .exchange(source)
            .ok_or_else(|| self.no_exchange(source))?;
        match &b.destination {
            Destination::Queue(q) if self.queue(q).is_none() => return Err(self.no_queue(q)),
            Destination::Exchange(e) if self.exchange(e).is_none() => {
                return Err(self.no_exchange(e))
            }
            _ => {}
        }
        let removed = ex.unbind(b);
        if removed && ex.auto_delete && ex.bindings.read().is_empty() {
            let _ = self.delete_exchange(source, false);
        }
        Ok(removed)
    }

    /// Every binding, as (source, binding), sorted (the default exchange's implicit ones
    /// first, as the management API lists them).
    pub fn bindings(&self) -> Vec<(String, Binding)> {
        let mut out: Vec<(String, Binding)> = self
            .queues()
            .iter()
            .map(|q| {
                (
                    String::new(),
                    Binding {
                        destination: Destination::Queue(q.name.clone()),
                        routing_key: q.name.clone(),
                        arguments: FieldTable::default(),
                    },
                )
            })
            .collect();
        for e in self.exchanges() {
            for b in e.bindings.read().iter() {
                out.push((e.name.clone(), b.clone()));
            }
        }
        out
    }

    // ---- routing and publishing ------------------------------------------------------

    /// The queues a message published to `exchange` goes to, following exchange-to-exchange
    /// bindings and alternate exchanges.
    pub fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Arc<Queue>>, AmqpError> {
        if exchange.is_empty() {
            return Ok(self.queue(routing_key).into_iter().collect());
        }
        let ex = self
            .exchange(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        Ok(self.route_via(&ex, routing_key, headers))
    }

    /// The queues a message published to `ex` reaches (through exchange-to-exchange
    /// bindings and alternate exchanges), each once. An exchange whose own bindings and the
    /// exchanges they lead to reached no queue passes the message to its alternate exchange.
    /// Depth first, in binding order, each exchange visited once; walked with a stack of our
    /// own rather than by recursion, since a client can bind a chain of exchanges as long as
    /// it likes (20,000 exchanges, one bound to the next, overflowed the connection's stack).
    pub fn route_via(
        &self,
        ex: &Arc<Exchange>,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Vec<Arc<Queue>> {
        /// Route through an exchange, or (once the exchanges it leads to are done) decide
        /// whether its alternate exchange gets the message.
        enum Step {
            Enter(Arc<Exchange>),
            Leave { ex: Arc<Exchange>, before: usize },
        }
        let mut queues: Vec<Arc<Queue>> = Vec::new();
        let mut reached: HashSet<*const Queue> = HashSet::new();
        let mut visited: HashSet<*const Exchange> = HashSet::new();
        let mut steps = vec![Step::Enter(ex.clone())];
        while let Some(step) = steps.pop() {
            match step {
                Step::Enter(ex) => {
                    if !visited.insert(Arc::as_ptr(&ex)) {
                        continue;
                    }
                    let before = queues.len();
                    let mut onward: Vec<String> = Vec::new();
                    {
                        let by_name = self.queues.read();
                        ex.route_each(routing_key, headers, &mut |d| match d {
                            Destination::Queue(name) => {
                                if let Some(q) = by_name.get(name) {
                                    if reached.insert(Arc::as_ptr(q)) {
                                        queues.push(q.clone());
                                    }
                                }
                            }
                            Destination::Exchange(e) => onward.push(e.clone()),
                        });
                    }
                    steps.push(Step::Leave { ex, before });
                    // Reversed onto the stack, so the first binding is followed first.
                    for e in onward.iter().rev() {
                        if let Some(next) = self.exchange(e) {
                            steps.push(Step::Enter(next));
                        }
                    }
                }
                Step::Leave { ex, before } => {
                    if queues.len() == before {
                        if let Some(ae) = ex.alternate().and_then(|a| self.exchange(a)) {
                            steps.push(Step::Enter(ae));
                        }
                    }
                }
            }
        }
        queues
    }

    /// Publishes a message as basic.publish would (delayed, direct reply-to, routed);
    /// answers whether it reached a queue or a requester (the management API's `routed`).
    pub fn publish(&self, message: Arc<Message>) -> Result<bool, AmqpError> {
        if message.exchange.is_empty() && message.routing_key.starts_with(crate::reply_to::PREFIX) {
            return Ok(self.reply_to.deliver(&message.routing_key, &message));
        }
        if let Some(ex) = self.exchange(&message.exchange) {
            if self.delay(&ex, &message).is_some() {
                return Ok(true);
            }
        }
        let queues = self.route(&message.exchange, &message.routing_key, message.headers())?;
        self.enqueue(&queues, &message);
        Ok(!queues.is_empty())
    }

    /// Puts a routed message into its queues.
    pub fn enqueue(&self, queues: &[Arc<Queue>], message: &Arc<Message>) -> Published {
        let mut out = Published::default();
        for q in queues {
            match q.enqueue(message.clone()) {
                Enqueued::Refused => out.refused = true,
                Enqueued::Accepted { offset: Some(o) } => {
                    if let Some(log) = q.log() {
                        out.writes.push((log.clone(), o));
                    }
                }
                Enqueued::Accepted { offset: None } => {}
            }
            if q.holds_publishers() {
                out.hold = Some(q.clone());
            }
        }
        out
    }

    /// A message for a delayed-message exchange: held until its `x-delay` passes. Answers
    /// `None` when it has no delay (route it now), else the disk write a confirm waits for
    /// (durable exchanges keep their delayed messages in the vhost's delayed log).
    pub fn delay(&self, ex: &Exchange, message: &Arc<Message>) -> Option<Published> {
        if ex.kind != ExchangeKind::Delayed {
            return None;
        }
        let due = delayed_due(message)?;
        let mut published = Published::default();
        let offset = match (&self.delayed_log, ex.durable) {
            (Some(log), true) => log.append(message),
            _ => None,
        };
        if let (Some(log), Some(o)) = (&self.delayed_log, offset) {
            published.writes.push((log.clone(), o));
        }
        self.core.timers.at(
            due,
            Timer::Delayed {
                vhost: self.me.clone(),
                exchange: ex.name.clone(),
                message: message.clone(),
                offset,
            },
        );
        Some(published)
    }

    /// Re-arms the delayed messages found in the delayed log at start-up (it is opened with
    /// no memory budget: every message comes back whole).
    pub(crate) fn restore_delayed(&self, recovered: Recovered) {
        for (offset, stored) in recovered {
            let Stored::Message(message) = stored else {
                continue;
            };
            let message: Arc<Message> = Arc::from(message);
            let due = delayed_due(&message).unwrap_or_else(now_ms);
            self.core.timers.at(
                due,
                Timer::Delayed {
                    vhost: self.me.clone(),
                    exchange: message.exchange.clone(),
                    message,
                    offset: Some(offset),
                },
            );
        }
    }

    /// A delayed message whose time came: routed as the exchange's `x-delayed-type`.
    pub fn deliver_delayed(&self, exchange: &str, message: Arc<Message>, offset: Option<i64>) {
        let headers = message.headers().cloned();
        if let Ok(queues) = self.route(exchange, &message.routing_key, headers.as_ref()) {
            self.enqueue(&queues, &message);
        }
        if let (Some(log), Some(o)) = (&self.delayed_log, offset) {
            log.ack(o);
        }
    }

    /// The vhost is deleted: its delayed log goes too.
    pub(crate) fn remove_delayed_log(&self) {
        if let Some(log) = &self.delayed_log {
            self.core.remove_log(log.clone());
        }
    }
}

thread_local! {
    /// Dead letters that enqueueing other dead letters produced on this thread (a queue that
    /// overflowed into a queue that overflowed ...), waiting for the outermost
    /// `VHost::dead_letter` call on the thread, of the vhost named by the pointer, to take
    /// them; `None` outside such a call.
    static DEAD_LETTER_BACKLOG: RefCell<Option<(*const VHost, Vec<DeadLetter>)>> =
        const { RefCell::new(None) };
}

/// Ends this thread's outermost dead-lettering call, even if it unwinds.
struct BacklogTaken;

impl Drop for BacklogTaken {
    fn drop(&mut self) {
        DEAD_LETTER_BACKLOG.with(|b| *b.borrow_mut() = None);
    }
}

impl VHost {
    fn route_dead_letters(&self, letters: Vec<DeadLetter>) {
        for l in letters {
            let headers = l.message.headers().cloned();
            let Ok(queues) = self.route(&l.exchange, &l.routing_key, headers.as_ref()) else {
                debug!(exchange = %l.exchange, "dead-letter exchange missing; message dropped");
                continue;
            };
            let queues: Vec<Arc<Queue>> = queues
                .into_iter()
                .filter(|q| !is_cycle(&l.message, &q.name))
                .collect();
            self.enqueue(&queues, &l.message);
        }
    }
}

impl Hooks for VHost {
    /// Routes dead letters and enqueues them. Enqueueing can dead-letter again (the next queue
    /// is full, ...); those letters are handled by the loop here rather than by a nested
    /// call, since a client can declare a chain of queues, each dead-lettering into the next,
    /// longer than any stack (each level was another trip through route, enqueue and push).
    fn dead_letter(&self, mut letters: Vec<DeadLetter>) {
        /// Where this call stands among this thread's dead-lettering calls.
        enum Call {
            /// The first: it drains the backlog.
            Outermost,
            /// Below the outermost call of this vhost: its letters went to the backlog.
            Queued,
            /// Below another vhost's call (no route leads from one vhost to another).
            Foreign,
        }
        let me: *const VHost = self;
        let call = DEAD_LETTER_BACKLOG.with(|b| match b.borrow_mut().as_mut() {
            Some((vhost, waiting)) if *vhost == me => {
                waiting.append(&mut letters);
                Call::Queued
            }
            Some(_) => Call::Foreign,
            None => Call::Outermost,
        });
        match call {
            Call::Queued => return,
            Call::Foreign => return self.route_dead_letters(letters),
            Call::Outermost => {}
        }
        DEAD_LETTER_BACKLOG.with(|b| *b.borrow_mut() = Some((me, Vec::new())));
        let _taken = BacklogTaken;
        while !letters.is_empty() {
            self.route_dead_letters(letters);
            letters = DEAD_LETTER_BACKLOG.with(|b| {
                b.borrow_mut()
                    .as_mut()
                    .map(|(_, waiting)| std::mem::take(waiting))
                    .unwrap_or_default()
            });
        }
    }

    fn memory(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.core.memory.clone()
    }

    fn open_spill(&self, queue: Weak<Queue>) {
        let core = self.core.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let (store, acks, writer) = (core.store.clone(), core.acks_dir.clone(), core.writer.clone());
            let id = crate::broker::generated_storage_id("spill-");
            let opened = tokio::task::spawn_blocking(move || QueueLog::open(&store, &acks, &id, writer, 0)).await;
            match opened {
                Ok(Ok((log, _))) => match queue.upgrade() {
                    Some(q) if !q.is_deleted() => {
                        if let Err(log) = q.set_spill(log) {
                            core.remove_log(log);
                        }
                    }
                    _ => core.remove_log(log),
                },
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot open a log to page a queue out to; it stays in memory"),
                Err(e) => tracing::warn!(error = %e, "opening a spill log failed"),
            }
        });
    }

    fn wake_at(&self, at_ms: i64, queue: Weak<Queue>) {
        self.core.timers.at(at_ms, Timer::Queue(queue));
    }

    fn remove_queue(&self, queue: &Arc<Queue>) {
        let Some(q) = self.queues.read().get(&queue.name).cloned() else {
            return;
        };
        if !Arc::ptr_eq(&q, queue) {
            return;
        }
        if let Some(q) = self.remove_queue(&queue.name) {
            debug!(queue = %q.name, vhost = %self.name, "queue removed (auto-delete or expiry)");
            let durable = q.durable;
            self.forget(q);
            if durable {
                self.core.request_save();
            }
        }
    }
}

/// When a message for a delayed-message exchange is due: its publish time plus its
/// `x-delay` header, or `None` when it has no positive delay.
fn delayed_due(message: &Message) -> Option<i64> {
    let delay = message
        .headers()
        .and_then(|h| table_int(h, "x-delay"))
        .unwrap_or(0);
    (delay > 0).then(|| message.published_ms.saturating_add(delay))
}

/// The `x-priority` of a consume on `queue`.
pub fn consumer_priority(args: &FieldTable, queue: &str, vhost: &str) -> Result<i64, AmqpError> {
    match args.inner().get("x-priority") {
        None => Ok(0),
        Some(v) => crate::message::value_int(v).ok_or_else(|| {
            AmqpError::precondition(format!(
                "invalid arg 'x-priority' for queue '{queue}' in vhost '{vhost}': \"expected integer, got {}\"",
                crate::queue::settings::type_name(v)
            ))
        }),
    }
}
