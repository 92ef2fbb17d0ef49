//! DescribeCluster: the cluster's live brokers (and, when v2 asks, the fenced ones) and its
//! controller.

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};

use crate::broker::Broker;

pub(crate) fn handle(
    broker: &Broker,
    listener: &str,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let cluster = &broker.cluster;
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(cluster.controller()))
        .with_cluster_authorized_operations(super::authorized::if_asked(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
        .with_brokers({
            // v2 asks for the fenced brokers too (KIP-1073), marked as such.
            let fenced = if req.include_fenced_brokers {
                cluster.fenced_nodes()
            } else {
                Vec::new()
            };
            let mut brokers: Vec<DescribeClusterBroker> = cluster
                .nodes()
                .into_iter()
                .map(|node| (node, false))
                .chain(fenced.into_iter().map(|node| (node, true)))
                // A broker without the client's listener is left out.
                .filter_map(|(node, is_fenced)| {
                    let (host, port) = node.address(listener)?;
                    Some(
                        DescribeClusterBroker::default()
                            .with_broker_id(BrokerId(node.id))
                            .with_host(StrBytes::from_string(host.to_owned()))
                            .with_port(i32::from(port))
                            .with_rack(node.rack.clone().map(StrBytes::from_string))
                            .with_is_fenced(is_fenced),
                    )
                })
                .collect();
            brokers.sort_by_key(|b| b.broker_id.0);
            brokers
        })
}
