//! One match from a decoded request to its handler (mini-redis's `Command::apply`).

use rill_protocol::{RequestKind, ResponseKind, versions};

use crate::access::Gate;
use crate::broker::Broker;
use crate::handler;

/// Who sent a request, and on which listener.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) client_id: String,
    /// The listener's name: answers that name brokers give their addresses on it.
    pub(crate) listener: &'a str,
    /// `User:CN=...` of a TLS client that showed a certificate; `None` is `User:ANONYMOUS`.
    pub(crate) principal: Option<&'a str>,
}

/// What the connection does after a request.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, moved once; boxing the answer would allocate per request"
)]
pub(crate) enum Reply {
    /// Send this answer.
    Answer(ResponseKind),
    /// Send nothing (a produce with acks=0).
    Silent,
    /// Close the connection: how Kafka tells an acks=0 producer that a produce failed.
    Close,
}

/// Runs the handler for `request`, through the authorizer's gate when ACLs are on: the one
/// place requests are authorized (`access.rs`).
pub(crate) async fn dispatch(
    broker: &Broker,
    ctx: &Context<'_>,
    mut request: rill_protocol::Request,
) -> Reply {
    if !broker.authorizer.enabled() {
        return run(broker, ctx, request).await;
    }
    let access = broker
        .authorizer
        .session(ctx.principal, ctx.peer.ip().to_canonical());
    let body = std::mem::replace(
        &mut request.body,
        RequestKind::ApiVersions(Default::default()),
    );
    match crate::access::gate(broker, &access, body, request.header.api_version) {
        Gate::Run(body, patch) => {
            request.body = body;
            let reply = run(broker, ctx, request).await;
            patch.apply(&access, reply)
        }
        Gate::Answer(answer) => Reply::Answer(answer),
        Gate::Close => Reply::Close,
    }
}

/// The handler for `request`.
async fn run(broker: &Broker, ctx: &Context<'_>, request: rill_protocol::Request) -> Reply {
    let version = request.header.api_version;
    let for_groups = matches!(
        request.body,
        RequestKind::JoinGroup(_)
            | RequestKind::SyncGroup(_)
            | RequestKind::Heartbeat(_)
            | RequestKind::LeaveGroup(_)
            | RequestKind::OffsetCommit(_)
            | RequestKind::OffsetFetch(_)
            | RequestKind::DescribeGroups(_)
            | RequestKind::DeleteGroups(_)
            | RequestKind::OffsetDelete(_)
    );
    if for_groups {
        // A client that skips FindCoordinator (a single broker is its own bootstrap) still finds
        // the offsets log in place; FindCoordinator makes it too.
        broker.offsets_topic_on_first_use().await;
    }
    Reply::Answer(match request.body {
        RequestKind::ApiVersions(_) => {
            // The levels are the broker's configuration, fixed for the process: the epoch of
            // its start, so a restart with another level is newer to a client.
            static FEATURES_EPOCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
            let epoch = *FEATURES_EPOCH.get_or_init(crate::partition::now_ms);
            let levels = broker.config.transaction_version;
            versions::with_features(versions::api_versions_response(), levels, epoch).into()
        }
        RequestKind::Metadata(req) => handler::metadata::handle(broker, ctx.listener, req, version)
            .await
            .into(),
        RequestKind::Produce(req) => {
            return handler::produce::handle(broker, req, version).await;
        }
        RequestKind::Fetch(req) => handler::fetch::handle(broker, req, version).await.into(),
        RequestKind::ListOffsets(req) => handler::list_offsets::handle(broker, req, version)
            .await
            .into(),
        RequestKind::CreateTopics(req) => handler::create_topics::handle(broker, req, version)
            .await
            .into(),
        RequestKind::DeleteTopics(req) => handler::delete_topics::handle(broker, req, version)
            .await
            .into(),
        RequestKind::CreatePartitions(req) => {
            handler::create_partitions::handle(broker, req).await.into()
        }
        RequestKind::DeleteRecords(req) => {
            handler::delete_records::handle(broker, req).await.into()
        }
        RequestKind::AlterPartitionReassignments(req) => {
            handler::reassignments::alter(broker, req, version)
                .await
                .into()
        }
        RequestKind::ListPartitionReassignments(req) => {
            handler::reassignments::list(broker, &req).into()
        }
        RequestKind::ElectLeaders(req) => handler::elect_leaders::handle(broker, req, version)
            .await
            .into(),
        RequestKind::DescribeConfigs(req) => {
            handler::configs::describe(broker, req, version).into()
        }
        RequestKind::AlterConfigs(req) => handler::configs::alter(broker, req).await.into(),
        RequestKind::IncrementalAlterConfigs(req) => {
            handler::configs::incremental_alter(broker, req)
                .await
                .into()
        }
        RequestKind::DescribeQuorum(req) => {
            handler::describe_quorum::handle(broker, &req, version).into()
        }
        RequestKind::DescribeCluster(req) => {
            handler::describe_cluster::handle(broker, ctx.listener, req).into()
        }
        RequestKind::DescribeLogDirs(req) => {
            handler::describe_log_dirs::handle(broker, req).await.into()
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            handler::offset_for_leader_epoch::handle(broker, req)
                .await
                .into()
        }
        RequestKind::DescribeTopicPartitions(req) => {
            handler::describe_topic_partitions::handle(broker, ctx.listener, req).into()
        }
        RequestKind::FindCoordinator(req) => {
            handler::find_coordinator::handle(broker, ctx.listener, req, version)
                .await
                .into()
        }
        RequestKind::JoinGroup(req) => handler::groups::join(broker, ctx, req, version)
            .await
            .into(),
        RequestKind::SyncGroup(req) => handler::groups::sync(broker, req).await.into(),
        RequestKind::Heartbeat(req) => handler::groups::heartbeat(broker, req).await.into(),
        RequestKind::LeaveGroup(req) => handler::groups::leave(broker, req, version).await.into(),
        RequestKind::ListGroups(req) => handler::groups::list(broker, req).await.into(),
        RequestKind::DescribeGroups(req) => {
            handler::groups::describe(broker, req, version).await.into()
        }
        RequestKind::DeleteGroups(req) => handler::groups::delete(broker, req).await.into(),
        RequestKind::OffsetCommit(req) => {
            handler::offsets::commit(broker, req, version, request.legacy)
                .await
                .into()
        }
        RequestKind::OffsetFetch(req) => handler::offsets::fetch(broker, req, version).into(),
        RequestKind::OffsetDelete(req) => handler::offsets::delete(broker, req).await.into(),
        RequestKind::InitProducerId(req) => handler::init_producer_id::handle(broker, req, version)
            .await
            .into(),
        RequestKind::AddPartitionsToTxn(req) => {
            handler::transactions::add_partitions(broker, req, version)
                .await
                .into()
        }
        RequestKind::AddOffsetsToTxn(req) => {
            handler::transactions::add_offsets(broker, req, version)
                .await
                .into()
        }
        RequestKind::EndTxn(req) => handler::transactions::end(broker, req, version)
            .await
            .into(),
        RequestKind::TxnOffsetCommit(req) => {
            handler::transactions::offset_commit(broker, req, version)
                .await
                .into()
        }
        RequestKind::WriteTxnMarkers(req) => handler::transactions::write_markers(broker, req)
            .await
            .into(),
        RequestKind::DescribeTransactions(req) => {
            handler::transactions::describe(broker, req).into()
        }
        RequestKind::ListTransactions(req) => handler::transactions::list(broker, &req).into(),
        RequestKind::DescribeProducers(req) => {
            handler::transactions::describe_producers(broker, req)
                .await
                .into()
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            handler::scram_credentials::describe(broker, req).into()
        }
        RequestKind::AlterUserScramCredentials(req) => {
            handler::scram_credentials::alter(broker, req).await.into()
        }
        RequestKind::CreateAcls(req) => handler::acls::create(broker, req).await.into(),
        RequestKind::DescribeAcls(req) => handler::acls::describe(broker, &req).into(),
        RequestKind::DeleteAcls(req) => handler::acls::delete(broker, req).await.into(),
        other => {
            // The header check admits only the APIs in the version table, and each has an arm
            // above; reaching this is a bug, answered by closing nothing and logging it.
            tracing::error!(request = ?other, "no handler for an advertised API");
            return Reply::Close;
        }
    })
}
