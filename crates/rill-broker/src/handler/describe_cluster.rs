//! DescribeCluster: the cluster's brokers and its controller.

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};

use crate::broker::Broker;

pub(crate) fn handle(broker: &Broker, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let cluster = &broker.cluster;
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(cluster.controller()))
        .with_cluster_authorized_operations(super::authorized::if_asked(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
        .with_brokers(
            cluster
                .nodes()
                .iter()
                .map(|node| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(node.id))
                        .with_host(StrBytes::from_string(node.host.clone()))
                        .with_port(i32::from(node.port))
                        .with_rack(node.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
}
