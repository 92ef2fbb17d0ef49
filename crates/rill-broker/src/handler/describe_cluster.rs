//! DescribeCluster: the one broker, which is also the controller.

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};

use crate::broker::Broker;

pub(crate) fn handle(broker: &Broker, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let node = BrokerId(broker.config.node_id);
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(node)
        .with_cluster_authorized_operations(super::authorized::if_asked(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(StrBytes::from_string(broker.advertised.0.clone()))
                .with_port(i32::from(broker.advertised.1)),
        ])
}
