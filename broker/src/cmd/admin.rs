//! Topic administration and offset look-ups: CreateTopic, DeleteTopic,
//! ListTopics, DescribeTopic, ListOffsets.

use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, DescribeTopicResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListTopicsResponse, OffsetSpec, PartitionInfo,
    StatusResponse, TopicSummary,
};

use super::{blocking, respond, respond_error, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;

pub fn create_topic(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: CreateTopicRequest,
) -> Reply {
    blocking(broker, header, move |broker| {
        broker.topics.create(
            &request.name,
            request.config,
            broker.config.default_partitions,
        )?;
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

pub fn list_topics(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let topics = broker
        .topics
        .list()
        .iter()
        .map(|t| TopicSummary {
            name: t.meta.name.clone(),
            partitions: t.meta.partitions,
        })
        .collect();
    Reply::Now(respond(
        header,
        &ListTopicsResponse {
            topics,
            ..ListTopicsResponse::default()
        },
    ))
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
        .map(|(index, log)| {
            let stats = log.stats();
            PartitionInfo {
                partition: index as u32,
                start_offset: stats.start_offset,
                end_offset: stats.end_offset,
                size_bytes: stats.size_bytes,
                segments: stats.segment_count,
                durable_offset: stats.durable_offset,
                problem: log.health_problem().unwrap_or_default(),
            }
        })
        .collect();
    Reply::Now(respond(
        header,
        &DescribeTopicResponse {
            name: topic.meta.name.clone(),
            config: Some(topic.meta.to_config()),
            partitions,
            ..DescribeTopicResponse::default()
        },
    ))
}

pub fn list_offsets(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: ListOffsetsRequest,
) -> Reply {
    let log = match broker.topics.partition(&request.topic, request.partition) {
        Ok(log) => log,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    let offset = match request.spec {
        s if s == OffsetSpec::Earliest as u32 => Ok(log.start_offset()),
        s if s == OffsetSpec::Latest as u32 => Ok(log.end_offset()),
        s if s == OffsetSpec::Timestamp as u32 => {
            // A look-up may scan part of a segment: run it off the async workers.
            let broker = broker.clone();
            return Reply::Later(Box::pin(async move {
                let timestamp = request.timestamp_ms;
                let found = tokio::task::spawn_blocking(move || {
                    log.offset_for_timestamp(timestamp)
                        .map(|o| o.unwrap_or_else(|| log.end_offset()))
                })
                .await;
                match found {
                    Ok(Ok(offset)) => respond(
                        header,
                        &ListOffsetsResponse {
                            offset,
                            ..ListOffsetsResponse::default()
                        },
                    ),
                    Ok(Err(error)) => respond_error(&broker, header, &error.into()),
                    Err(join) => respond_error(
                        &broker,
                        header,
                        &BrokerError::InvalidRequest(join.to_string()),
                    ),
                }
            }));
        }
        other => Err(BrokerError::InvalidRequest(format!(
            "unknown offset spec {other}"
        ))),
    };
    Reply::Now(match offset {
        Ok(offset) => respond(
            header,
            &ListOffsetsResponse {
                offset,
                ..ListOffsetsResponse::default()
            },
        ),
        Err(error) => respond_error(broker, header, &error),
    })
}
