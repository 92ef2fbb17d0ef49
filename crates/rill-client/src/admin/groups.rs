//! Consumer groups: `ListGroups`, `DescribeGroups`, `DeleteGroups`, and committed offsets and
//! lag through `OffsetFetch` and `ListOffsets`. Group requests go to the group's coordinator,
//! found with `FindCoordinator`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use rill_protocol::kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};

use super::offsets::OffsetSpec;
use super::topics::single;
use super::{Admin, check, missing, non_empty};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// A group as [`Admin::list_groups`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its protocol type: `consumer` for consumer groups, empty for groups that only commit
    /// offsets.
    pub protocol_type: String,
    /// Its state (`Stable`, `Empty`, `PreparingRebalance`, ...), from brokers that report it
    /// (`ListGroups` v4+, Kafka 2.6).
    pub state: Option<String>,
    /// Its type (`classic`, `consumer`), from brokers that report it (v5+, Kafka 3.8).
    pub group_type: Option<String>,
}

/// One member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static membership id (`group.instance.id`), if it has one.
    pub group_instance_id: Option<String>,
    /// The `client.id` it connected with.
    pub client_id: String,
    /// The host it connected from, as the broker saw it (`/127.0.0.1`).
    pub client_host: String,
    /// Its join metadata (for consumers, a `ConsumerProtocolSubscription`).
    pub metadata: Bytes,
    /// Its assignment from the leader (for consumers, a `ConsumerProtocolAssignment`; see
    /// [`GroupMember::assigned_partitions`]).
    pub assignment: Bytes,
}

impl GroupMember {
    /// The member's partitions, `(topic, partitions)` sorted by topic, when
    /// [`GroupMember::assignment`] is a consumer-protocol assignment (empty bytes are an empty
    /// assignment); `None` when it is not one.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for member in admin.describe_group("billing").await?.members {
    ///     println!("{}: {:?}", member.client_id, member.assigned_partitions());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn assigned_partitions(&self) -> Option<Vec<(String, Vec<i32>)>> {
        crate::group::protocol::decode_assignment(&self.assignment)
            .map(|assignment| assignment.into_iter().collect())
    }
}

/// A group as [`Admin::describe_groups`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state: `Stable`, `Empty`, `PreparingRebalance`, `CompletingRebalance`.
    pub state: String,
    /// Its protocol type (`consumer`); empty when the group has no members.
    pub protocol_type: String,
    /// The protocol the members agreed on (for consumers the assignor: `range`, ...); empty
    /// unless the group is `Stable` or completing a rebalance.
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

/// A group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset: the next record the group will read.
    pub offset: i64,
    /// The leader epoch committed with it, if any.
    pub leader_epoch: Option<i32>,
    /// The metadata string committed with it, if not empty.
    pub metadata: Option<String>,
}

/// How far a group is behind on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset.
    pub committed: i64,
    /// The partition's log end offset; `None` when it could not be listed (the topic was
    /// deleted, say).
    pub end: Option<i64>,
    /// `end - committed` (never negative): records the group has yet to read.
    pub lag: Option<i64>,
}

impl Admin {
    /// Every group on every broker, sorted by id.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for group in admin.list_groups().await? {
    ///     println!("{} {:?}", group.group_id, group.state);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.list_groups_in_states::<&str>(&[]).await
    }

    /// The groups in one of `states` (Kafka's names, any case: `Stable`, `Empty`, ...; none
    /// at all means every group), sorted by id. Needs brokers that filter (`ListGroups` v4,
    /// Kafka 2.6); older ones fail with [`ClientError::UnsupportedApi`].
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let idle = admin.list_groups_in_states(&["Empty"]).await?;
    /// println!("{} groups without members", idle.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_groups_in_states<S: AsRef<str> + Sync>(
        &self,
        states: &[S],
    ) -> Result<Vec<GroupListing>> {
        let states: Vec<StrBytes> = states
            .iter()
            .map(|s| StrBytes::from_string(s.as_ref().to_owned()))
            .collect();
        let brokers: Vec<String> = self
            .metadata(Some(&[]))
            .await?
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .collect();
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        for addr in brokers {
            let listed = self
                .retrying(|| self.list_groups_on(&addr, &states))
                .await?;
            for group in listed {
                let _ = groups.insert(group.group_id.clone(), group);
            }
        }
        Ok(groups.into_values().collect())
    }

    async fn list_groups_on(&self, addr: &str, states: &[StrBytes]) -> Result<Vec<GroupListing>> {
        let conn = self.cluster.connection(addr).await?;
        let version = conn.version_for(ApiKey::ListGroups)?;
        if version < 4 && !states.is_empty() {
            return Err(ClientError::UnsupportedApi {
                addr: addr.to_owned(),
                api_key: ApiKey::ListGroups,
                broker: conn.broker_range(ApiKey::ListGroups),
                client: Some((4, 5)),
            });
        }
        let request = ListGroupsRequest::default().with_states_filter(states.to_vec());
        let response = conn.request_at(request, version).await?;
        check(response.error_code, None, || {
            format!("list groups on {addr}")
        })?;
        Ok(response
            .groups
            .iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
                group_type: if version >= 5 {
                    non_empty(&g.group_type)
                } else {
                    None
                },
            })
            .collect())
    }

    /// The connection to `group`'s coordinator (`FindCoordinator`, key type group).
    async fn coordinator(&self, group: &str) -> Result<Arc<Connection>> {
        let conn = self.any().await?;
        let version = conn.version_for(ApiKey::FindCoordinator)?;
        let key = StrBytes::from_string(group.to_owned());
        let context = || format!("find the coordinator of group '{group}'");
        let request = FindCoordinatorRequest::default().with_key_type(0);
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![key])
        } else {
            request.with_key(key)
        };
        let response = conn.request_at(request, version).await?;
        let (host, port) = if version >= 4 {
            let c = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == group)
                .ok_or_else(|| missing(ApiKey::FindCoordinator, &format!("group '{group}'")))?;
            check(c.error_code, c.error_message.as_ref(), context)?;
            (c.host.to_string(), c.port)
        } else {
            check(
                response.error_code,
                response.error_message.as_ref(),
                context,
            )?;
            (response.host.to_string(), response.port)
        };
        self.cluster.connection(&format!("{host}:{port}")).await
    }

    /// Describes groups: state, protocol and members (client id, host, assignment). One
    /// result per group, in the order given; a group that does not exist is
    /// `GROUP_ID_NOT_FOUND` (whatever the broker's version).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for group in admin.describe_groups(&["billing", "audit"]).await? {
    ///     let group = group?;
    ///     println!("{} {} {} members", group.group_id, group.state, group.members.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_groups<S: AsRef<str> + Sync>(
        &self,
        groups: &[S],
    ) -> Result<Vec<Result<GroupDescription>>> {
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            let group = group.as_ref();
            results.push(self.retrying(|| self.describe_group_once(group)).await);
        }
        Ok(results)
    }

    async fn describe_group_once(&self, group: &str) -> Result<GroupDescription> {
        let conn = self.coordinator(group).await?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = conn.request(request).await?;
        let context = || format!("describe group '{group}'");
        let g = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| missing(ApiKey::DescribeGroups, &format!("group '{group}'")))?;
        check(g.error_code, g.error_message.as_ref(), context)?;
        // Before v6 an unknown group is state Dead without an error.
        if g.group_state.as_str() == "Dead" {
            return Err(ClientError::Kafka {
                code: ErrorCode::GroupIdNotFound,
                context: context(),
            });
        }
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    metadata: m.member_metadata.clone(),
                    assignment: m.member_assignment.clone(),
                })
                .collect(),
        })
    }

    /// Describes one group; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let group = admin.describe_group("billing").await?;
    /// println!("{} ({})", group.state, group.protocol);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        single(self.describe_groups(&[group]).await?)
    }

    /// Deletes groups and their committed offsets. One result per group, in the order given:
    /// `NON_EMPTY_GROUP` while it has members, `GROUP_ID_NOT_FOUND` if it does not exist.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.delete_groups(&["old-1", "old-2"]).await? {
    ///     if let Err(err) = result {
    ///         println!("{err}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_groups<S: AsRef<str> + Sync>(
        &self,
        groups: &[S],
    ) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            let group = group.as_ref();
            results.push(self.delete_group_once(group).await);
        }
        Ok(results)
    }

    async fn delete_group_once(&self, group: &str) -> Result<()> {
        let conn = self.retrying(|| self.coordinator(group)).await?;
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = conn.request(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.0.as_str() == group)
            .ok_or_else(|| missing(ApiKey::DeleteGroups, &format!("group '{group}'")))?;
        check(result.error_code, None, || {
            format!("delete group '{group}'")
        })
    }

    /// Deletes one group; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.delete_group("billing").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        single(self.delete_groups(&[group]).await?)
    }

    /// Every offset `group` has committed, sorted by topic and partition (empty for a group
    /// that has none, or does not exist).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for c in admin.group_offsets("billing").await? {
    ///     println!("{}/{} at {} ({:?})", c.topic, c.partition, c.offset, c.metadata);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        self.retrying(|| self.group_offsets_once(group)).await
    }

    async fn group_offsets_once(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let conn = self.coordinator(group).await?;
        let version = conn.version_for(ApiKey::OffsetFetch)?;
        let context = || format!("fetch the offsets of group '{group}'");
        let group_id = GroupId(StrBytes::from_string(group.to_owned()));
        // (topic, partition, offset, leader epoch, metadata, error code)
        let mut rows: Vec<(String, i32, i64, i32, Option<String>, i16)> = Vec::new();
        if version >= 8 {
            let request = OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group_id)
                    .with_topics(None),
            ]);
            let response = conn.request_at(request, version).await?;
            let g = response
                .groups
                .iter()
                .find(|g| g.group_id.0.as_str() == group)
                .ok_or_else(|| missing(ApiKey::OffsetFetch, &format!("group '{group}'")))?;
            check(g.error_code, None, context)?;
            for t in &g.topics {
                for p in &t.partitions {
                    rows.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_ref().and_then(non_empty),
                        p.error_code,
                    ));
                }
            }
        } else {
            if version < 2 {
                // v1 cannot ask for "every partition" (a null topic list).
                return Err(ClientError::UnsupportedApi {
                    addr: conn.addr().to_owned(),
                    api_key: ApiKey::OffsetFetch,
                    broker: conn.broker_range(ApiKey::OffsetFetch),
                    client: Some((2, 9)),
                });
            }
            let request = OffsetFetchRequest::default()
                .with_group_id(group_id)
                .with_topics(None);
            let response = conn.request_at(request, version).await?;
            check(response.error_code, None, context)?;
            for t in &response.topics {
                for p in &t.partitions {
                    rows.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_ref().and_then(non_empty),
                        p.error_code,
                    ));
                }
            }
        }
        let mut offsets = Vec::with_capacity(rows.len());
        for (topic, partition, offset, leader_epoch, metadata, error_code) in rows {
            check(error_code, None, || {
                format!(
                    "fetch the offset of group '{group}' for topic '{topic}' partition {partition}"
                )
            })?;
            // -1: nothing committed for this partition.
            if offset < 0 {
                continue;
            }
            offsets.push(CommittedOffset {
                topic,
                partition,
                offset,
                leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
                metadata,
            });
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// Commits `offsets` (`(topic, partition, next offset to read)`) for `group` from outside
    /// the group (Kafka's `alterConsumerGroupOffsets`: an `OffsetCommit` with no member id and
    /// generation `-1`). The coordinator only takes it while the group has no active members
    /// (otherwise `UNKNOWN_MEMBER_ID` or `ILLEGAL_GENERATION`); a group that does not exist
    /// yet is created with these offsets. One result per partition, in the order given; the
    /// outer error is the request's (no coordinator, a broken connection). Sent once, not
    /// retried.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.alter_group_offsets("billing", &[("events", 0, 42)]).await? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alter_group_offsets<S: AsRef<str> + Sync>(
        &self,
        group: &str,
        offsets: &[(S, i32, i64)],
    ) -> Result<Vec<Result<()>>> {
        let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            topics
                .entry(topic.as_ref())
                .or_default()
                .push((*partition, *offset));
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&(partition, offset)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(partition)
                                            .with_committed_offset(offset)
                                            .with_committed_metadata(Some(StrBytes::default()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.retrying(|| self.coordinator(group)).await?;
        let response = conn.request(request).await?;
        Ok(offsets
            .iter()
            .map(|(topic, partition, _)| {
                let topic = topic.as_ref();
                let result = response
                    .topics
                    .iter()
                    .filter(|t| t.name.0.as_str() == topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == *partition)
                    .ok_or_else(|| {
                        missing(
                            ApiKey::OffsetCommit,
                            &format!("topic '{topic}' partition {partition}"),
                        )
                    })?;
                check(result.error_code, None, || {
                    format!(
                        "commit the offset of group '{group}' for topic '{topic}' partition {partition}"
                    )
                })
            })
            .collect())
    }

    /// How far `group` is behind: for each partition it has committed an offset for,
    /// `(committed, end, lag)` with `end` the log end offset from `ListOffsets`, sorted by
    /// topic and partition.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let lag = admin.group_lag("billing").await?;
    /// let total: i64 = lag.iter().filter_map(|p| p.lag).sum();
    /// println!("{total} records behind");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        let committed = self.group_offsets(group).await?;
        let partitions: Vec<(&str, i32)> = committed
            .iter()
            .map(|c| (c.topic.as_str(), c.partition))
            .collect();
        let ends = self.list_offsets(&partitions, OffsetSpec::Latest).await?;
        Ok(committed
            .into_iter()
            .zip(ends)
            .map(|(c, end)| {
                let end = end.ok().map(|e| e.offset);
                PartitionLag {
                    topic: c.topic,
                    partition: c.partition,
                    committed: c.offset,
                    end,
                    lag: end.map(|e| e.saturating_sub(c.offset).max(0)),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupMember;

    fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
        GroupMember {
            member_id: String::new(),
            group_instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            metadata: bytes::Bytes::new(),
            assignment: bytes::Bytes::copy_from_slice(bytes),
        }
        .assigned_partitions()
    }

    #[test]
    fn decodes_a_consumer_assignment_and_refuses_garbage() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        for (name, partitions) in [("orders", vec![0_i32, 2]), ("audit", vec![1])] {
            bytes.extend_from_slice(&(name.len() as i16).to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend_from_slice(&p.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&(-1_i32).to_be_bytes()); // user data: null
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![
                ("audit".to_owned(), vec![1]),
                ("orders".to_owned(), vec![0, 2])
            ])
        );
        assert_eq!(
            decode_assignment(&[]),
            Some(Vec::new()),
            "empty: nothing assigned"
        );
        for cut in 1..bytes.len() - 4 {
            assert_eq!(decode_assignment(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
    }
}
