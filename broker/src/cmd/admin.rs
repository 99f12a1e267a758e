//! Topic administration and offset look-ups: CreateTopic, DeleteTopic,
//! ListTopics, DescribeTopic, ListOffsets. Wire `TopicConfig`s become typed
//! `TopicSettings` here and back.

use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, DescribeTopicResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListTopicsResponse, PartitionInfo, StatusResponse,
    TopicConfig, TopicSummary,
};
use ferry_storage::{FsyncPolicy, Log};

use super::{blocking, offset_spec, respond, respond_error, Reply};
use crate::broker::Broker;
use crate::domain::{OffsetSpec, TopicName};
use crate::error::BrokerError;
use crate::topics::TopicSettings;

/// The typed settings of a wire topic config.
pub fn topic_settings(config: Option<TopicConfig>) -> Result<TopicSettings, BrokerError> {
    let config = config.unwrap_or_default();
    let fsync = config
        .fsync
        .map(|text| {
            text.parse::<FsyncPolicy>()
                .map_err(|_| BrokerError::InvalidFsync(text))
        })
        .transpose()?;
    Ok(TopicSettings {
        partitions: Some(config.partitions).filter(|n| *n > 0),
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        segment_bytes: config.segment_bytes,
        segment_ms: config.segment_ms,
        fsync,
    })
}

fn topic_config(settings: TopicSettings) -> TopicConfig {
    TopicConfig {
        partitions: settings.partitions.unwrap_or(0),
        retention_ms: settings.retention_ms,
        retention_bytes: settings.retention_bytes,
        segment_bytes: settings.segment_bytes,
        fsync: settings.fsync.map(|p| p.to_string()),
        segment_ms: settings.segment_ms,
    }
}

pub fn create_topic(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: CreateTopicRequest,
) -> Reply {
    blocking(broker, header, move |broker| {
        let name = TopicName::new(request.name)?;
        let settings = topic_settings(request.config)?;
        let default_partitions = broker.config.default_partitions;
        broker.topics.create(&name, settings, default_partitions)?;
        Ok(respond(header, &StatusResponse::default()))
    })
}

pub fn delete_topic(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: DeleteTopicRequest,
) -> Reply {
    blocking(broker, header, move |broker| {
        broker.topics.delete(&request.name)?;
        broker.queues.topic_deleted(&request.name);
        broker
            .groups
            .topic_deleted(&request.name, &broker.topics.partition_counts());
        // Offsets of the topic go too (the tombstone is fsynced in the background).
        drop(broker.offsets.delete_topic(&request.name)?);
        Ok(respond(header, &StatusResponse::default()))
    })
}

/// Topics the caller may describe (`visible`).
pub fn list_topics(
    broker: &Arc<Broker>,
    header: FrameHeader,
    visible: &dyn Fn(&str) -> bool,
) -> Reply {
    let topics = broker
        .topics
        .list()
        .iter()
        .filter(|t| visible(t.meta.name.as_str()))
        .map(|t| TopicSummary {
            name: t.meta.name.to_string(),
            partitions: t.meta.partitions,
        })
        .collect();
    let response = ListTopicsResponse {
        topics,
        ..ListTopicsResponse::default()
    };
    Reply::Now(respond(header, &response))
}

fn partition_info(index: usize, log: &Log) -> PartitionInfo {
    let stats = log.stats();
    PartitionInfo {
        partition: index as u32,
        start_offset: stats.start_offset,
        end_offset: stats.end_offset,
        size_bytes: stats.size_bytes,
        segments: stats.segment_count,
        durable_offset: stats.durable_offset,
        problem: log.health_problem().unwrap_or_default(),
        producers: stats.producers,
    }
}

pub fn describe_topic(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: DescribeTopicRequest,
) -> Reply {
    let topic = match broker.topics.get(&request.name) {
        Ok(topic) => topic,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, log)| partition_info(index, log))
        .collect();
    let response = DescribeTopicResponse {
        name: topic.meta.name.to_string(),
        config: Some(topic_config(topic.meta.settings())),
        partitions,
        ..DescribeTopicResponse::default()
    };
    Reply::Now(respond(header, &response))
}

fn offset_response(header: FrameHeader, offset: u64) -> ferry_protocol::frame::OutFrame {
    let response = ListOffsetsResponse {
        offset,
        ..ListOffsetsResponse::default()
    };
    respond(header, &response)
}

pub fn list_offsets(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: ListOffsetsRequest,
) -> Reply {
    let found = offset_spec(request.spec, request.timestamp_ms, 0).and_then(|spec| {
        let log = broker.topics.partition(&request.topic, request.partition)?;
        Ok((spec, log))
    });
    let (spec, log) = match found {
        Ok(found) => found,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    match spec {
        OffsetSpec::Earliest => Reply::Now(offset_response(header, log.start_offset())),
        OffsetSpec::Latest => Reply::Now(offset_response(header, log.end_offset())),
        // A look-up may scan part of a segment: run it off the async workers.
        OffsetSpec::Timestamp(ms) => blocking(broker, header, move |_| {
            let offset = log.offset_for_timestamp(ms)?;
            Ok(offset_response(
                header,
                offset.unwrap_or_else(|| log.end_offset()),
            ))
        }),
        OffsetSpec::Offset(_) => {
            let error = BrokerError::InvalidChoice {
                field: "spec",
                expected: "0 (earliest), 1 (latest) or 2 (timestamp)",
                value: "3".into(),
            };
            Reply::Now(respond_error(broker, header, &error))
        }
    }
}
