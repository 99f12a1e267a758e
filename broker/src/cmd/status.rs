//! BrokerStatus: what an operator asks first (`ferryctl status`): version,
//! uptime, data directory, how much the broker holds and whether every
//! partition is healthy.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::BrokerStatusResponse;

use super::{respond, Reply};
use crate::broker::Broker;

pub fn broker_status(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let topics = broker.topics.list();
    let partitions = topics.iter().map(|t| t.partitions.len()).sum::<usize>();
    let unhealthy = topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|log| log.health_problem().is_some())
        .count();
    let mut groups: BTreeSet<String> = broker.offsets.groups().into_iter().collect();
    groups.extend(broker.groups.list().into_iter().map(|(group, _, _)| group));
    let response = BrokerStatusResponse {
        broker_version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: broker.started_at.elapsed().as_millis() as u64,
        data_dir: broker.config.data_dir.display().to_string(),
        topics: topics.len() as u32,
        partitions: partitions as u32,
        groups: groups.len() as u32,
        queues: broker.queues.list().len() as u32,
        connections_open: broker.metrics.connections_open.load(Ordering::Relaxed),
        unhealthy_partitions: unhealthy as u32,
        ..BrokerStatusResponse::default()
    };
    Reply::Now(respond(header, &response))
}
