//! In-memory state machine of one classic consumer group.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{codes, GroupConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Reported for groups the coordinator does not know, as Kafka does.
pub(crate) const DEAD: &str = "Dead";

pub(crate) struct JoinWaiter {
    pub tx: oneshot::Sender<JoinGroupResponse>,
    pub version: i16,
}

pub(crate) struct SyncWaiter {
    pub tx: oneshot::Sender<SyncGroupResponse>,
    pub version: i16,
}

/// What a JoinGroup request says about the member.
pub(crate) struct JoinSpec {
    pub client_id: String,
    pub client_host: String,
    pub instance_id: Option<String>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub session_deadline: Instant,
    pub join_waiter: Option<JoinWaiter>,
    pub sync_waiter: Option<SyncWaiter>,
}

impl Member {
    pub(crate) fn new(id: String, spec: JoinSpec, now: Instant) -> Self {
        Member {
            id,
            instance_id: spec.instance_id,
            client_id: spec.client_id,
            client_host: spec.client_host,
            session_deadline: now + spec.session_timeout,
            session_timeout: spec.session_timeout,
            rebalance_timeout: spec.rebalance_timeout,
            protocol_type: spec.protocol_type,
            protocols: spec.protocols,
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
        }
    }

    /// Applies a rejoin; returns whether the protocols changed.
    pub(crate) fn update(&mut self, spec: JoinSpec, now: Instant) -> bool {
        let changed = self.protocol_type != spec.protocol_type || self.protocols != spec.protocols;
        self.client_id = spec.client_id;
        self.client_host = spec.client_host;
        self.session_timeout = spec.session_timeout;
        self.rebalance_timeout = spec.rebalance_timeout;
        self.protocol_type = spec.protocol_type;
        self.protocols = spec.protocols;
        self.session_deadline = now + self.session_timeout;
        changed
    }

    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }

    fn fail_waiters(&mut self, code: i16) {
        if let Some(w) = self.join_waiter.take() {
            let _ = w.tx.send(join_error(w.version, code, &self.id));
        }
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.tx.send(sync_error(code));
        }
    }
}

struct InitialDelay {
    until: Instant,
    cap: Instant,
}

pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// Insertion ordered: the oldest member becomes leader.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pub pending: HashMap<String, Instant>,
    /// group.instance.id -> member id of static members.
    pub static_members: HashMap<String, String>,
    /// PreparingRebalance: when the join completes without the laggards;
    /// CompletingRebalance: when members that did not sync are dropped.
    rebalance_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    /// Declared by an administrator: kept while idle and without offsets, until deleted.
    pub declared: bool,
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            declared: false,
        }
    }

    /// No members and nothing in flight: the group exists only for its offsets.
    pub(crate) fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Whether a member with these protocols may be in the group alongside the
    /// other members: same protocol type and at least one protocol they all support.
    pub(crate) fn supports(
        &self,
        protocol_type: &str,
        protocols: &[&str],
        exclude: Option<&str>,
    ) -> bool {
        let mut others = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != exclude)
            .peekable();
        let Some(first) = others.peek() else {
            return true;
        };
        if first.protocol_type != protocol_type {
            return false;
        }
        let others: Vec<&Member> = others.collect();
        protocols
            .iter()
            .any(|p| others.iter().all(|m| m.supports(p)))
    }

    /// First of the leader's protocols that every member supports.
    fn select_protocol(&self, leader: &str) -> Option<String> {
        let leader = self.members.get(leader)?;
        leader
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| self.members.values().all(|m| m.supports(name)))
            .or_else(|| leader.protocols.first().map(|(name, _)| name))
            .cloned()
    }

    /// A member id was handed out or a member arrived: keeps the initial delay
    /// window open a little longer so that consumers starting together share it.
    pub(crate) fn note_arrival(&mut self, now: Instant, cfg: &GroupConfig) {
        if let Some(d) = &mut self.initial_delay {
            let until = (now + cfg.initial_rebalance_delay).min(d.cap);
            d.until = d.until.max(until);
        }
    }

    pub(crate) fn prepare_rebalance(&mut self, now: Instant, cfg: &GroupConfig, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            // members waiting for an assignment of the abandoned generation must rejoin
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.tx.send(sync_error(codes::REBALANCE_IN_PROGRESS));
                }
                m.assignment = Bytes::new();
            }
        }
        let initial = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        let timeout = self.max_rebalance_timeout();
        if initial && !cfg.initial_rebalance_delay.is_zero() {
            let cap = now + timeout.min(cfg.initial_rebalance_delay_max);
            let until = (now + cfg.initial_rebalance_delay).min(cap);
            self.initial_delay = Some(InitialDelay { until, cap });
            self.rebalance_deadline = Some(cap);
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + timeout);
        }
        info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            reason,
            "preparing rebalance"
        );
    }

    /// Completes the join phase when every member has rejoined (after the initial
    /// delay) or the rebalance timeout passed.
    pub(crate) fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let forced = self.rebalance_deadline.is_some_and(|d| now >= d);
        let delay_over = self.initial_delay.as_ref().is_none_or(|d| now >= d.until);
        let all_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        if forced || (delay_over && all_joined) {
            self.complete_join(now);
            true
        } else {
            false
        }
    }

    fn complete_join(&mut self, now: Instant) {
        let laggards: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in laggards {
            info!(group = %self.id, member = %id, generation = self.generation, "removing member that did not rejoin in time");
            self.remove_member(&id, codes::UNKNOWN_MEMBER_ID);
        }
        self.initial_delay = None;
        self.rebalance_deadline = None;
        self.generation = self.generation.checked_add(1).unwrap_or(1);

        let Some(first) = self.members.keys().next().cloned() else {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        };
        let leader = match self.leader.take() {
            Some(l) if self.members.contains_key(&l) => l,
            _ => first,
        };
        self.protocol_name = self.select_protocol(&leader);
        self.protocol_type = self.members.get(&leader).map(|m| m.protocol_type.clone());
        self.leader = Some(leader);
        self.state = GroupState::CompletingRebalance;
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
        let mut waiters = Vec::new();
        for m in self.members.values_mut() {
            m.touch(now);
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                waiters.push((m.id.clone(), w));
            }
        }
        for (id, w) in waiters {
            let _ = w.tx.send(self.join_response(&id, w.version));
        }
        info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            leader = self.leader.as_deref().unwrap_or_default(),
            protocol = self.protocol_name.as_deref().unwrap_or_default(),
            "rebalance joined, awaiting sync"
        );
    }

    /// The JoinGroup answer of the current generation; only the leader gets the
    /// member list.
    pub(crate) fn join_response(&self, member_id: &str, version: i16) -> JoinGroupResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut r = JoinGroupResponse::default();
        r.error_code = codes::NONE;
        r.generation_id = self.generation;
        if version >= 7 {
            r.protocol_type = self.protocol_type.clone().map(StrBytes::from_string);
        }
        r.protocol_name = Some(StrBytes::from_string(protocol.clone()));
        r.leader = StrBytes::from_string(self.leader.clone().unwrap_or_default());
        r.member_id = StrBytes::from_string(member_id.to_owned());
        if self.is_leader(member_id) {
            r.members = self
                .members
                .values()
                .map(|m| {
                    let mut jm = JoinGroupResponseMember::default();
                    jm.member_id = StrBytes::from_string(m.id.clone());
                    if version >= 5 {
                        jm.group_instance_id = m.instance_id.clone().map(StrBytes::from_string);
                    }
                    jm.metadata = m.metadata_for(&protocol);
                    jm
                })
                .collect();
        }
        r
    }

    pub(crate) fn sync_response(&self, assignment: Bytes, version: i16) -> SyncGroupResponse {
        let mut r = SyncGroupResponse::default();
        r.assignment = assignment;
        if version >= 5 {
            r.protocol_type = self.protocol_type.clone().map(StrBytes::from_string);
            r.protocol_name = self.protocol_name.clone().map(StrBytes::from_string);
        }
        r
    }

    /// The leader's SyncGroup: store assignments and answer everyone waiting.
    pub(crate) fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) {
        for (id, assignment) in assignments {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = assignment;
            }
        }
        self.state = GroupState::Stable;
        self.rebalance_deadline = None;
        let mut waiters = Vec::new();
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                waiters.push((m.assignment.clone(), w));
            }
        }
        for (assignment, w) in waiters {
            let _ = w.tx.send(self.sync_response(assignment, w.version));
        }
        info!(group = %self.id, generation = self.generation, members = self.members.len(), "group is stable");
    }

    /// Removes a member, answering its pending requests with `code`. The caller
    /// decides about the rebalance (see `after_removal`).
    pub(crate) fn remove_member(&mut self, id: &str, code: i16) -> bool {
        let Some(mut m) = self.members.shift_remove(id) else {
            return false;
        };
        m.fail_waiters(code);
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(id) {
                self.static_members.remove(inst);
            }
        }
        if self.is_leader(id) {
            self.leader = self.members.keys().next().cloned();
        }
        true
    }

    /// Group transition after members left or expired.
    pub(crate) fn after_removal(&mut self, now: Instant, cfg: &GroupConfig, reason: &str) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg, reason);
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now);
            }
            GroupState::Empty => {}
        }
    }

    /// A static member rejoined with an empty member id: the new id takes over the
    /// old member's place (and leadership); requests of the old id are fenced.
    pub(crate) fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        let Some((idx, _, mut m)) = self.members.shift_remove_full(old_id) else {
            return;
        };
        m.fail_waiters(codes::FENCED_INSTANCE_ID);
        m.id = new_id.to_owned();
        if let Some(inst) = &m.instance_id {
            self.static_members.insert(inst.clone(), new_id.to_owned());
        }
        self.members.shift_insert(idx, new_id.to_owned(), m);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        info!(group = %self.id, old_member = %old_id, member = %new_id, "static member replaced");
    }

    /// Expires sessions and pending member ids, completes overdue rebalances.
    /// Returns the next instant something may be due.
    pub(crate) fn tick(&mut self, now: Instant, cfg: &GroupConfig) -> Option<Instant> {
        let group = &self.id;
        self.pending.retain(|id, deadline| {
            let keep = now < *deadline;
            if !keep {
                debug!(group = %group, member = %id, "pending member id expired");
            }
            keep
        });

        // members waiting for a join or sync answer are kept alive, as in Kafka
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now >= m.session_deadline && m.join_waiter.is_none() && m.sync_waiter.is_none()
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            info!(group = %self.id, member = %id, generation = self.generation, "member session expired");
            self.remove_member(id, codes::UNKNOWN_MEMBER_ID);
        }
        if !expired.is_empty() {
            self.after_removal(now, cfg, "member session expired");
        }

        match self.state {
            GroupState::PreparingRebalance => {
                self.try_complete_join(now);
            }
            GroupState::CompletingRebalance
                if self.rebalance_deadline.is_some_and(|d| now >= d) =>
            {
                let unsynced: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in &unsynced {
                    info!(group = %self.id, member = %id, generation = self.generation, "removing member that did not sync in time");
                    self.remove_member(id, codes::UNKNOWN_MEMBER_ID);
                }
                self.prepare_rebalance(now, cfg, "members did not sync in time");
                self.try_complete_join(now);
            }
            _ => {}
        }

        let member_deadlines = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.session_deadline);
        self.pending
            .values()
            .copied()
            .chain(member_deadlines)
            .chain(self.rebalance_deadline)
            .chain(self.initial_delay.as_ref().map(|d| d.until))
            .filter(|d| *d > now)
            .min()
    }

    /// Topics the members subscribe to, if every subscription can be read.
    pub(crate) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }
}

/// Topics of a consumer protocol subscription (`version: i16`, then an array of
/// strings as the first field in every version). Hand parsed so that a hostile
/// array length cannot make us allocate.
pub(crate) fn parse_subscription_topics(data: &[u8]) -> Option<Vec<String>> {
    fn take<'a>(d: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if d.len() < n {
            return None;
        }
        let (head, tail) = d.split_at(n);
        *d = tail;
        Some(head)
    }
    let mut d = data;
    let version = i16::from_be_bytes(take(&mut d, 2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let n = i32::from_be_bytes(take(&mut d, 4)?.try_into().ok()?);
    let n = usize::try_from(n).ok()?;
    if n > d.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i16::from_be_bytes(take(&mut d, 2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        topics.push(std::str::from_utf8(take(&mut d, len)?).ok()?.to_owned());
    }
    Some(topics)
}

pub(crate) fn join_error(version: i16, code: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r.member_id = StrBytes::from_string(member_id.to_owned());
    r.protocol_type = None;
    // protocol_name is nullable only from v7; older clients expect a string
    r.protocol_name = if version >= 7 {
        None
    } else {
        Some(StrBytes::new())
    };
    r
}

pub(crate) fn sync_error(code: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code;
    r
}
