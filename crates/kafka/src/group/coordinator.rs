//! Request handling of the group coordinator.
//!
//! Locking: `groups` then `offsets`, never the other way; neither is held across
//! an `.await` nor while calling the dispatcher's callbacks (they may take the
//! broker's own locks). Join and sync requests that must wait park a oneshot
//! sender in the member and await the receiver outside the locks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info};
use uuid::Uuid;

use super::offsets::{Committed, OffsetStore};
use super::state::{
    join_error, sync_error, Group, GroupState, JoinSpec, JoinWaiter, Member, SyncWaiter, DEAD,
};
use super::{codes, GroupConfig, GroupError};

/// The timer task re-checks at least this often even when nothing is due.
const IDLE_TICK: Duration = Duration::from_secs(1);

enum Outcome<T> {
    Done(T),
    Wait(oneshot::Receiver<T>),
}

pub struct GroupCoordinator {
    cfg: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    offsets: Mutex<OffsetStore>,
    /// Wakes the timer task when new deadlines appear.
    wake: Arc<Notify>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        if let Some(h) = self.timer.lock().take() {
            h.abort();
        }
    }
}

/// One partition of an OffsetFetch answer, independent of the response version.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

impl Fetched {
    fn new(partition: i32, committed: Option<Committed>) -> Self {
        match committed {
            Some(c) => Fetched {
                partition,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata,
                error: codes::NONE,
            },
            None => Fetched::error(partition, codes::NONE),
        }
    }

    fn error(partition: i32, error: i16) -> Self {
        Fetched {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error,
        }
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn non_empty(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or_default())
}

impl GroupCoordinator {
    /// Opens the offsets journal in `dir` and starts the timer task. Must be called
    /// inside a tokio runtime.
    pub fn open(dir: &Path) -> Result<Arc<Self>, GroupError> {
        Self::open_with_config(dir, GroupConfig::default())
    }

    pub fn open_with_config(dir: &Path, cfg: GroupConfig) -> Result<Arc<Self>, GroupError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| GroupError::Io(std::io::Error::other(format!("no tokio runtime: {e}"))))?;
        let store = OffsetStore::open(dir, cfg.compact_min_bytes)?;
        // groups that only have offsets are Empty groups, as Kafka shows them
        let groups = store
            .group_ids()
            .map(|id| (id.clone(), Group::new(id)))
            .collect();
        let coordinator = Arc::new(GroupCoordinator {
            cfg,
            groups: Mutex::new(groups),
            offsets: Mutex::new(store),
            wake: Arc::new(Notify::new()),
            timer: Mutex::new(None),
        });
        let handle = runtime.spawn(run_timer(
            Arc::downgrade(&coordinator),
            coordinator.wake.clone(),
        ));
        *coordinator.timer.lock() = Some(handle);
        Ok(coordinator)
    }

    pub(crate) fn tick(&self, now: Instant) -> Option<Instant> {
        let mut groups = self.groups.lock();
        let mut next: Option<Instant> = None;
        let mut idle = Vec::new();
        for g in groups.values_mut() {
            if let Some(d) = g.tick(now, &self.cfg) {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
            // A group declared through the APIs stays until deleted, as in forget_if_idle
            // (the timer forgot it, so a declared group could vanish from the lists).
            if g.is_idle() && !g.declared {
                idle.push(g.id.clone());
            }
        }
        if !idle.is_empty() {
            let offsets = self.offsets.lock();
            for id in idle {
                if !offsets.has_group(&id) {
                    debug!(group = %id, "forgetting empty group without offsets");
                    groups.remove(&id);
                }
            }
        }
        next
    }

    /// Drops a group that has neither members nor offsets left.
    fn forget_if_idle(&self, groups: &mut HashMap<String, Group>, id: &str) {
        if groups.get(id).is_some_and(|g| g.is_idle() && !g.declared)
            && !self.offsets.lock().has_group(id)
        {
            debug!(group = %id, "forgetting empty group without offsets");
            groups.remove(id);
        }
    }

    // ---- membership -------------------------------------------------------

    pub async fn join_group(
        self: &Arc<Self>,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let outcome = self.join_locked(&req, version, client_id, client_host);
        self.wake.notify_one();
        match outcome {
            Outcome::Done(r) => r,
            Outcome::Wait(rx) => rx.await.unwrap_or_else(|_| {
                join_error(
                    version,
                    codes::COORDINATOR_NOT_AVAILABLE,
                    req.member_id.as_str(),
                )
            }),
        }
    }

    fn join_locked(
        &self,
        req: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Outcome<JoinGroupResponse> {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let fail = |code| Outcome::Done(join_error(version, code, member_id));
        if group_id.is_empty() {
            return fail(codes::INVALID_GROUP_ID);
        }
        let session = req.session_timeout_ms;
        if session < self.cfg.min_session_timeout_ms || session > self.cfg.max_session_timeout_ms {
            return fail(codes::INVALID_SESSION_TIMEOUT);
        }
        // v0 has no rebalance timeout: the session timeout bounds the join phase
        let rebalance = if version == 0 || req.rebalance_timeout_ms <= 0 {
            session
        } else {
            req.rebalance_timeout_ms
        };
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        let instance_id = if version >= 5 {
            non_empty(req.group_instance_id.as_ref())
        } else {
            None
        };
        let spec = JoinSpec {
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            instance_id: instance_id.clone(),
            session_timeout: ms(session),
            rebalance_timeout: ms(rebalance),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
        };
        let names: Vec<&str> = req.protocols.iter().map(|p| p.name.as_str()).collect();

        let now = Instant::now();
        let mut groups = self.groups.lock();
        if !member_id.is_empty() && !groups.contains_key(group_id) {
            return fail(codes::UNKNOWN_MEMBER_ID);
        }
        let group = groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id));

        let static_owner = instance_id
            .as_ref()
            .and_then(|i| group.static_members.get(i))
            .cloned();
        let exclude = if member_id.is_empty() {
            static_owner.as_deref()
        } else {
            Some(member_id)
        };
        if !group.supports(&spec.protocol_type, &names, exclude) {
            return fail(codes::INCONSISTENT_GROUP_PROTOCOL);
        }

        if member_id.is_empty() {
            if let Some(inst) = &instance_id {
                // static members skip MEMBER_ID_REQUIRED, their instance id identifies them
                let new_id = format!("{inst}-{}", Uuid::new_v4());
                return match static_owner {
                    Some(old) => {
                        group.replace_static_member(&old, &new_id);
                        self.rejoin(group, &new_id, spec, version, now)
                    }
                    None => self.add_member(group, new_id, spec, version, now),
                };
            }
            let new_id = format!("{client_id}-{}", Uuid::new_v4());
            if version >= 4 {
                group.pending.insert(new_id.clone(), now + ms(session));
                group.note_arrival(now, &self.cfg);
                debug!(group = %group_id, member = %new_id, "member id required");
                return Outcome::Done(join_error(version, codes::MEMBER_ID_REQUIRED, &new_id));
            }
            // v0-v3 clients do not know MEMBER_ID_REQUIRED: join them directly
            return self.add_member(group, new_id, spec, version, now);
        }

        if let Some(owner) = &static_owner {
            if owner != member_id {
                info!(group = %group_id, member = %member_id, owner = %owner, "fenced static member");
                return fail(codes::FENCED_INSTANCE_ID);
            }
        }
        if group.pending.remove(member_id).is_some() {
            return self.add_member(group, member_id.to_owned(), spec, version, now);
        }
        if !group.members.contains_key(member_id) {
            return fail(codes::UNKNOWN_MEMBER_ID);
        }
        self.rejoin(group, member_id, spec, version, now)
    }

    fn add_member(
        &self,
        group: &mut Group,
        id: String,
        spec: JoinSpec,
        version: i16,
        now: Instant,
    ) -> Outcome<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        info!(
            group = %group.id,
            member = %id,
            client_id = %spec.client_id,
            generation = group.generation,
            "member joining"
        );
        if let Some(inst) = &spec.instance_id {
            group.static_members.insert(inst.clone(), id.clone());
        }
        let mut member = Member::new(id.clone(), spec, now);
        member.join_waiter = Some(JoinWaiter { tx, version });
        group.members.insert(id, member);
        if group.state == GroupState::PreparingRebalance {
            group.note_arrival(now, &self.cfg);
        } else {
            group.prepare_rebalance(now, &self.cfg, "new member joined");
        }
        group.try_complete_join(now);
        Outcome::Wait(rx)
    }

    fn rejoin(
        &self,
        group: &mut Group,
        id: &str,
        spec: JoinSpec,
        version: i16,
        now: Instant,
    ) -> Outcome<JoinGroupResponse> {
        let state = group.state;
        let is_leader = group.is_leader(id);
        let Some(member) = group.members.get_mut(id) else {
            return Outcome::Done(join_error(version, codes::UNKNOWN_MEMBER_ID, id));
        };
        let changed = member.update(spec, now);
        // like Kafka, a follower that lost its join answer gets the current generation
        // back without disturbing the group
        let current = match state {
            GroupState::Stable => !is_leader && !changed,
            GroupState::CompletingRebalance => !changed,
            _ => false,
        };
        if current {
            debug!(group = %group.id, member = %id, generation = group.generation, "member rejoined current generation");
            return Outcome::Done(group.join_response(id, version));
        }
        let (tx, rx) = oneshot::channel();
        // a duplicate join replaces the earlier request, whose receiver is then dropped
        member.join_waiter = Some(JoinWaiter { tx, version });
        debug!(group = %group.id, member = %id, generation = group.generation, "member rejoining");
        if state != GroupState::PreparingRebalance {
            let reason = if changed {
                "member protocols changed"
            } else {
                "leader rejoined"
            };
            group.prepare_rebalance(now, &self.cfg, reason);
        }
        group.try_complete_join(now);
        Outcome::Wait(rx)
    }

    pub async fn sync_group(
        self: &Arc<Self>,
        req: SyncGroupRequest,
        version: i16,
    ) -> SyncGroupResponse {
        match self.sync_locked(&req, version) {
            Outcome::Done(r) => r,
            Outcome::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| sync_error(codes::COORDINATOR_NOT_AVAILABLE)),
        }
    }

    fn sync_locked(&self, req: &SyncGroupRequest, version: i16) -> Outcome<SyncGroupResponse> {
        let fail = |code| Outcome::Done(sync_error(code));
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if group_id.is_empty() {
            return fail(codes::INVALID_GROUP_ID);
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return fail(codes::UNKNOWN_MEMBER_ID);
        };
        if version >= 3 {
            if let Some(inst) = non_empty(req.group_instance_id.as_ref()) {
                if group
                    .static_members
                    .get(&inst)
                    .is_some_and(|o| o != member_id)
                {
                    return fail(codes::FENCED_INSTANCE_ID);
                }
            }
        }
        if !group.members.contains_key(member_id) {
            return fail(codes::UNKNOWN_MEMBER_ID);
        }
        if req.generation_id != group.generation {
            return fail(codes::ILLEGAL_GENERATION);
        }
        if version >= 5 {
            let type_ok = req
                .protocol_type
                .as_ref()
                .is_none_or(|t| group.protocol_type.as_deref() == Some(t.as_str()));
            let name_ok = req
                .protocol_name
                .as_ref()
                .is_none_or(|n| group.protocol_name.as_deref() == Some(n.as_str()));
            if !type_ok || !name_ok {
                return fail(codes::INCONSISTENT_GROUP_PROTOCOL);
            }
        }
        match group.state {
            GroupState::Empty => fail(codes::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => fail(codes::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let Some(member) = group.members.get_mut(member_id) else {
                    return fail(codes::UNKNOWN_MEMBER_ID);
                };
                member.touch(now);
                let assignment = member.assignment.clone();
                Outcome::Done(group.sync_response(assignment, version))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let Some(member) = group.members.get_mut(member_id) else {
                    return fail(codes::UNKNOWN_MEMBER_ID);
                };
                member.touch(now);
                member.sync_waiter = Some(SyncWaiter { tx, version });
                if group.is_leader(member_id) {
                    let assignments = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    group.complete_sync(assignments);
                } else {
                    debug!(group = %group_id, member = %member_id, generation = group.generation, "follower awaiting leader sync");
                }
                Outcome::Wait(rx)
            }
        }
    }

    pub fn heartbeat(&self, req: &HeartbeatRequest, version: i16) -> HeartbeatResponse {
        let mut resp = HeartbeatResponse::default();
        resp.error_code = self.heartbeat_code(req, version);
        resp
    }

    fn heartbeat_code(&self, req: &HeartbeatRequest, version: i16) -> i16 {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if group_id.is_empty() {
            return codes::INVALID_GROUP_ID;
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if version >= 3 {
            if let Some(inst) = non_empty(req.group_instance_id.as_ref()) {
                if group
                    .static_members
                    .get(&inst)
                    .is_some_and(|o| o != member_id)
                {
                    return codes::FENCED_INSTANCE_ID;
                }
            }
        }
        let generation = group.generation;
        let state = group.state;
        let Some(member) = group.members.get_mut(member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation {
            return codes::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty => codes::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                member.touch(Instant::now());
                codes::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.touch(Instant::now());
                codes::NONE
            }
        }
    }

    pub fn leave_group(&self, req: &LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        non_empty(m.group_instance_id.as_ref()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let mut resp = LeaveGroupResponse::default();
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            resp.error_code = codes::INVALID_GROUP_ID;
            return resp;
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let results: Vec<i16> = match groups.get_mut(group_id) {
            None => vec![codes::UNKNOWN_MEMBER_ID; leaving.len()],
            Some(group) => {
                let mut removed = false;
                let results = leaving
                    .iter()
                    .map(|(member_id, instance_id)| {
                        let target = match instance_id {
                            Some(inst) => match group.static_members.get(inst) {
                                Some(owner) if member_id.is_empty() || owner == member_id => {
                                    owner.clone()
                                }
                                Some(_) => return codes::FENCED_INSTANCE_ID,
                                None => member_id.clone(),
                            },
                            None => member_id.clone(),
                        };
                        if group.pending.remove(&target).is_some() {
                            codes::NONE
                        } else if group.remove_member(&target, codes::UNKNOWN_MEMBER_ID) {
                            info!(group = %group_id, member = %target, generation = group.generation, "member left");
                            removed = true;
                            codes::NONE
                        } else {
                            codes::UNKNOWN_MEMBER_ID
                        }
                    })
                    .collect();
                if removed {
                    group.after_removal(now, &self.cfg, "member left");
                }
                results
            }
        };
        self.forget_if_idle(&mut groups, group_id);
        drop(groups);
        self.wake.notify_one();

        if version >= 3 {
            resp.members = leaving
                .into_iter()
                .zip(&results)
                .map(|((member_id, instance_id), code)| {
                    let mut m = MemberResponse::default();
                    m.member_id = StrBytes::from_string(member_id);
                    m.group_instance_id = instance_id.map(StrBytes::from_string);
                    m.error_code = *code;
                    m
                })
                .collect();
        } else {
            resp.error_code = results.first().copied().unwrap_or(codes::NONE);
        }
        resp
    }

    // ---- offsets ----------------------------------------------------------

    /// Kafka's rules for who may commit: standalone consumers (negative generation)
    /// while the group is Empty, otherwise a member of the current generation.
    fn commit_error(
        group: &mut Group,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Option<i16> {
        if let Some(inst) = instance_id {
            if group
                .static_members
                .get(inst)
                .is_some_and(|o| o != member_id)
            {
                return Some(codes::FENCED_INSTANCE_ID);
            }
        }
        if generation < 0 && group.state == GroupState::Empty {
            return None;
        }
        if group.state == GroupState::CompletingRebalance {
            return Some(codes::REBALANCE_IN_PROGRESS);
        }
        let current = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return Some(codes::UNKNOWN_MEMBER_ID);
        };
        if generation != current {
            return Some(codes::ILLEGAL_GENERATION);
        }
        member.touch(now);
        None
    }

    pub fn commit_offsets(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
        topic_check: &dyn Fn(&str, i32) -> Option<i16>,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let generation = req.generation_id_or_member_epoch;
        let instance_id = if version >= 7 {
            non_empty(req.group_instance_id.as_ref())
        } else {
            None
        };
        // partition verdicts first, outside our locks
        let mut results: Vec<Vec<i16>> = req
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| {
                        topic_check(t.name.as_str(), p.partition_index).unwrap_or_else(|| {
                            let meta_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
                            if meta_len > self.cfg.max_offset_metadata_bytes {
                                codes::OFFSET_METADATA_TOO_LARGE
                            } else {
                                codes::NONE
                            }
                        })
                    })
                    .collect()
            })
            .collect();

        let now = Instant::now();
        let mut groups = self.groups.lock();
        let group_error = match groups.get_mut(group_id) {
            None if generation < 0 => None,
            None => Some(codes::ILLEGAL_GENERATION),
            Some(g) => Self::commit_error(g, generation, member_id, instance_id.as_deref(), now),
        };
        if let Some(code) = group_error {
            debug!(group = %group_id, member = %member_id, generation, code, "offset commit rejected");
            results.iter_mut().flatten().for_each(|c| *c = code);
        }

        let ts = now_ms();
        let mut entries = Vec::new();
        for (t, codes_t) in req.topics.iter().zip(&results) {
            for (p, code) in t.partitions.iter().zip(codes_t) {
                if *code == codes::NONE {
                    entries.push((
                        t.name.to_string(),
                        p.partition_index,
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                            commit_ts_ms: ts,
                        },
                    ));
                }
            }
        }
        if !entries.is_empty() {
            let stored = self.offsets.lock().commit(group_id, entries);
            match stored {
                Ok(()) => {
                    groups
                        .entry(group_id.to_owned())
                        .or_insert_with(|| Group::new(group_id));
                }
                Err(e) => {
                    error!(group = %group_id, error = %e, "could not journal offset commit");
                    results
                        .iter_mut()
                        .flatten()
                        .filter(|c| **c == codes::NONE)
                        .for_each(|c| *c = codes::COORDINATOR_NOT_AVAILABLE);
                }
            }
        }
        drop(groups);

        let mut resp = OffsetCommitResponse::default();
        resp.topics = req
            .topics
            .iter()
            .zip(results)
            .map(|(t, codes_t)| {
                let mut rt = OffsetCommitResponseTopic::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .zip(codes_t)
                    .map(|(p, code)| {
                        let mut rp = OffsetCommitResponsePartition::default();
                        rp.partition_index = p.partition_index;
                        rp.error_code = code;
                        rp
                    })
                    .collect();
                rt
            })
            .collect();
        resp
    }

    /// Offsets of one group; `requested` None means every committed partition.
    fn fetch_group(
        &self,
        group_id: &str,
        requested: Option<Vec<(&TopicName, &[i32])>>,
        topic_allowed: &dyn Fn(&str) -> bool,
    ) -> Vec<(TopicName, Vec<Fetched>)> {
        match requested {
            None => {
                let snapshot: Vec<(String, Vec<(i32, Committed)>)> = {
                    let offsets = self.offsets.lock();
                    offsets
                        .group(group_id)
                        .map(|g| {
                            g.iter()
                                .map(|(t, parts)| {
                                    (
                                        t.clone(),
                                        parts.iter().map(|(p, c)| (*p, c.clone())).collect(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                };
                snapshot
                    .into_iter()
                    .filter(|(t, _)| topic_allowed(t))
                    .map(|(t, parts)| {
                        let fetched = parts
                            .into_iter()
                            .map(|(p, c)| Fetched::new(p, Some(c)))
                            .collect();
                        (TopicName(StrBytes::from_string(t)), fetched)
                    })
                    .collect()
            }
            Some(list) => {
                let snapshot: Vec<Vec<Option<Committed>>> = {
                    let offsets = self.offsets.lock();
                    list.iter()
                        .map(|(t, parts)| {
                            parts
                                .iter()
                                .map(|p| offsets.get(group_id, t.as_str(), *p).cloned())
                                .collect()
                        })
                        .collect()
                };
                list.into_iter()
                    .zip(snapshot)
                    .map(|((t, parts), found)| {
                        let fetched = if topic_allowed(t.as_str()) {
                            parts
                                .iter()
                                .zip(found)
                                .map(|(p, c)| Fetched::new(*p, c))
                                .collect()
                        } else {
                            parts
                                .iter()
                                .map(|p| Fetched::error(*p, codes::TOPIC_AUTHORIZATION_FAILED))
                                .collect()
                        };
                        (t.clone(), fetched)
                    })
                    .collect()
            }
        }
    }

    pub fn fetch_offsets(
        &self,
        req: &OffsetFetchRequest,
        version: i16,
        topic_allowed: &dyn Fn(&str) -> bool,
    ) -> OffsetFetchResponse {
        let mut resp = OffsetFetchResponse::default();
        if version >= 8 {
            resp.groups = req
                .groups
                .iter()
                .map(|g| {
                    let requested = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (&t.name, t.partition_indexes.as_slice()))
                            .collect()
                    });
                    let mut rg = OffsetFetchResponseGroup::default();
                    rg.group_id = g.group_id.clone();
                    rg.topics = self
                        .fetch_group(g.group_id.as_str(), requested, topic_allowed)
                        .into_iter()
                        .map(|(name, parts)| {
                            let mut rt = OffsetFetchResponseTopics::default();
                            rt.name = name;
                            rt.partitions = parts
                                .into_iter()
                                .map(|f| {
                                    let mut rp = OffsetFetchResponsePartitions::default();
                                    rp.partition_index = f.partition;
                                    rp.committed_offset = f.offset;
                                    rp.committed_leader_epoch = f.leader_epoch;
                                    rp.metadata = Some(StrBytes::from_string(f.metadata));
                                    rp.error_code = f.error;
                                    rp
                                })
                                .collect();
                            rt
                        })
                        .collect();
                    rg
                })
                .collect();
        } else {
            let requested = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (&t.name, t.partition_indexes.as_slice()))
                    .collect()
            });
            resp.topics = self
                .fetch_group(req.group_id.as_str(), requested, topic_allowed)
                .into_iter()
                .map(|(name, parts)| {
                    let mut rt = OffsetFetchResponseTopic::default();
                    rt.name = name;
                    rt.partitions = parts
                        .into_iter()
                        .map(|f| {
                            let mut rp = OffsetFetchResponsePartition::default();
                            rp.partition_index = f.partition;
                            rp.committed_offset = f.offset;
                            rp.committed_leader_epoch = f.leader_epoch;
                            rp.metadata = Some(StrBytes::from_string(f.metadata));
                            rp.error_code = f.error;
                            rp
                        })
                        .collect();
                    rt
                })
                .collect();
        }
        resp
    }

    pub fn delete_offsets(&self, req: &OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
        let mut resp = OffsetDeleteResponse::default();
        let group_id = req.group_id.as_str();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            resp.error_code = codes::GROUP_ID_NOT_FOUND;
            return resp;
        };
        // Empty: everything may go. Active consumer group: only topics nobody
        // subscribes to (all of them count as subscribed if a subscription cannot
        // be read). Other active groups: nothing.
        let subscribed = if group.state == GroupState::Empty {
            None
        } else if group.protocol_type.as_deref() == Some("consumer") {
            Some(group.subscribed_topics())
        } else {
            resp.error_code = codes::NON_EMPTY_GROUP;
            return resp;
        };
        let mut results: Vec<Vec<i16>> = req
            .topics
            .iter()
            .map(|t| {
                let code = match &subscribed {
                    None => codes::NONE,
                    Some(Some(topics)) if !topics.contains(t.name.as_str()) => codes::NONE,
                    Some(_) => codes::GROUP_SUBSCRIBED_TO_TOPIC,
                };
                vec![code; t.partitions.len()]
            })
            .collect();
        let deletable: Vec<(String, i32)> = req
            .topics
            .iter()
            .zip(&results)
            .flat_map(|(t, codes_t)| {
                t.partitions
                    .iter()
                    .zip(codes_t)
                    .filter(|(_, c)| **c == codes::NONE)
                    .map(|(p, _)| (t.name.to_string(), p.partition_index))
            })
            .collect();
        let deleted = self.offsets.lock().delete_partitions(group_id, &deletable);
        match deleted {
            Ok(()) => {
                if !deletable.is_empty() {
                    info!(group = %group_id, partitions = deletable.len(), "deleted committed offsets");
                }
            }
            Err(e) => {
                error!(group = %group_id, error = %e, "could not journal offset deletion");
                results
                    .iter_mut()
                    .flatten()
                    .filter(|c| **c == codes::NONE)
                    .for_each(|c| *c = codes::COORDINATOR_NOT_AVAILABLE);
            }
        }
        self.forget_if_idle(&mut groups, group_id);
        drop(groups);

        resp.topics = req
            .topics
            .iter()
            .zip(results)
            .map(|(t, codes_t)| {
                let mut rt = OffsetDeleteResponseTopic::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .zip(codes_t)
                    .map(|(p, code)| {
                        let mut rp = OffsetDeleteResponsePartition::default();
                        rp.partition_index = p.partition_index;
                        rp.error_code = code;
                        rp
                    })
                    .collect();
                rt
            })
            .collect();
        resp
    }

    pub fn remove_topic(&self, topic: &str) {
        let mut groups = self.groups.lock();
        let affected = self.offsets.lock().delete_topic(topic);
        match affected {
            Ok(affected) => {
                if !affected.is_empty() {
                    info!(topic = %topic, groups = affected.len(), "dropped committed offsets of deleted topic");
                }
                for id in affected {
                    self.forget_if_idle(&mut groups, &id);
                }
            }
            Err(e) => error!(topic = %topic, error = %e, "could not journal topic offset deletion"),
        }
    }

    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .lock()
            .get(group, topic, partition)
            .map(|c| c.offset)
    }

    /// Makes every acknowledged commit durable, compacting the journal when it has
    /// grown well past the live data.
    pub fn flush(&self) -> Result<(), GroupError> {
        let file = {
            let mut offsets = self.offsets.lock();
            offsets.maybe_compact()?;
            offsets.take_dirty()
        };
        if let Some(file) = file {
            if let Err(e) = file.sync_data() {
                self.offsets.lock().mark_dirty();
                return Err(e.into());
            }
        }
        Ok(())
    }

    // ---- administration ---------------------------------------------------

    /// Every group with members or committed offsets.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.groups.lock().keys().cloned().collect();
        ids.extend(self.offsets.lock().group_ids().cloned());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Registers an empty group (an administrator's "create group"): ListGroups and
    /// DescribeGroups show it before any member joins, until DeleteGroups removes it.
    /// Answers false if the group already exists.
    pub fn declare_group(&self, id: &str) -> bool {
        let mut groups = self.groups.lock();
        if groups.contains_key(id) || self.offsets.lock().has_group(id) {
            if let Some(g) = groups.get_mut(id) {
                g.declared = true;
            }
            return false;
        }
        let mut g = Group::new(id);
        g.declared = true;
        groups.insert(id.to_string(), g);
        true
    }

    /// Committed offsets of a group: (topic, partition, offset), in order.
    pub fn committed_offsets(&self, group: &str) -> Vec<(String, i32, i64)> {
        let offsets = self.offsets.lock();
        let Some(g) = offsets.group(group) else {
            return Vec::new();
        };
        let mut out: Vec<(String, i32, i64)> = g
            .iter()
            .flat_map(|(topic, parts)| {
                parts
                    .iter()
                    .map(move |(p, c)| (topic.clone(), *p, c.offset))
            })
            .collect();
        out.sort();
        out
    }

    pub fn list_groups(&self, req: &ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let lower =
            |v: &[StrBytes]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
        let states = if version >= 4 {
            lower(&req.states_filter)
        } else {
            Vec::new()
        };
        let types = if version >= 5 {
            lower(&req.types_filter)
        } else {
            Vec::new()
        };
        let mut resp = ListGroupsResponse::default();
        // every group here speaks the classic protocol
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            return resp;
        }
        let groups = self.groups.lock();
        let mut listed: Vec<ListedGroup> = groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
            .map(|g| {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(sb(&g.id));
                l.protocol_type = sb(g.protocol_type.as_deref().unwrap_or_default());
                if version >= 4 {
                    l.group_state = sb(g.state.name());
                }
                if version >= 5 {
                    l.group_type = sb("classic");
                }
                l
            })
            .collect();
        drop(groups);
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        resp.groups = listed;
        resp
    }

    pub fn describe_groups(
        &self,
        req: &DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = self.groups.lock();
        let described = req
            .groups
            .iter()
            .map(|id| {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                let Some(g) = groups.get(id.as_str()) else {
                    d.group_state = sb(DEAD);
                    return d;
                };
                d.group_state = sb(g.state.name());
                d.protocol_type = sb(g.protocol_type.as_deref().unwrap_or_default());
                // like Kafka, metadata and assignments only describe a Stable group
                let stable_protocol = (g.state == GroupState::Stable)
                    .then(|| g.protocol_name.clone())
                    .flatten();
                d.protocol_data = sb(stable_protocol.as_deref().unwrap_or_default());
                d.members = g
                    .members
                    .values()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = sb(&m.id);
                        if version >= 4 {
                            dm.group_instance_id = m.instance_id.as_deref().map(sb);
                        }
                        dm.client_id = sb(&m.client_id);
                        dm.client_host = sb(&m.client_host);
                        if let Some(p) = &stable_protocol {
                            dm.member_metadata = m.metadata_for(p);
                            dm.member_assignment = m.assignment.clone();
                        } else {
                            dm.member_metadata = Bytes::new();
                        }
                        dm
                    })
                    .collect();
                d
            })
            .collect();
        let mut resp = DescribeGroupsResponse::default();
        resp.groups = described;
        resp
    }

    pub fn delete_groups(&self, req: &DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
        let mut groups = self.groups.lock();
        let mut offsets = self.offsets.lock();
        let results = req
            .groups_names
            .iter()
            .map(|name| {
                let id = name.as_str();
                let code = match groups.get(id) {
                    None if !offsets.has_group(id) => codes::GROUP_ID_NOT_FOUND,
                    Some(g) if !(g.state == GroupState::Empty && g.members.is_empty()) => {
                        codes::NON_EMPTY_GROUP
                    }
                    _ => match offsets.delete_group(id) {
                        Ok(()) => {
                            groups.remove(id);
                            info!(group = %id, "group deleted");
                            codes::NONE
                        }
                        Err(e) => {
                            error!(group = %id, error = %e, "could not journal group deletion");
                            codes::COORDINATOR_NOT_AVAILABLE
                        }
                    },
                };
                let mut r = DeletableGroupResult::default();
                r.group_id = name.clone();
                r.error_code = code;
                r
            })
            .collect();
        let mut resp = DeleteGroupsResponse::default();
        resp.results = results;
        resp
    }
}

/// Expires sessions and finishes overdue rebalances. Holds only a weak reference
/// so dropping the coordinator ends the task.
async fn run_timer(coordinator: Weak<GroupCoordinator>, wake: Arc<Notify>) {
    loop {
        let now = Instant::now();
        let next = match coordinator.upgrade() {
            Some(c) => c.tick(now),
            None => return,
        };
        let until = next.map_or(now + IDLE_TICK, |n| n.min(now + IDLE_TICK));
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = wake.notified() => {}
        }
    }
}
