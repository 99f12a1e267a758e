//! Create a topic with its own fsync policy, describe it, list group lags.

use ferry_client::{Client, FsyncPolicy, TopicConfig};

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    let config = TopicConfig {
        partitions: 3,
        fsync: Some(FsyncPolicy::IntervalMs(100)),
        ..TopicConfig::default()
    };
    client.ensure_topic_with("metrics", &config).await?;
    let described = client.describe_topic("metrics").await?; // a TopicDescription
    println!(
        "{} ends at {}",
        described.name, described.partitions[0].end_offset
    );
    for group in client.list_groups().await? {
        let described = client.describe_group(&group.group).await?;
        let lag: u64 = described.partitions.iter().map(|p| p.lag).sum();
        println!("{} lags {lag} records", group.group);
    }
    Ok(())
}
