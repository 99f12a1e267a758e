//! Read five records as a member of the consumer group "greeters".

use ferry_client::{Client, GroupConfig, GroupConsumer};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    client.ensure_topic("greetings", 3).await?;
    let config = GroupConfig::new("greeters", &["greetings"]);
    let mut consumer = GroupConsumer::join(&client, config).await?;
    let mut printed = 0;
    while let Some(record) = consumer.next().await {
        let record = record?;
        println!("{}/{}@{}", record.topic, record.partition, record.offset);
        printed += 1;
        if printed == 5 {
            break; // a service would keep going
        }
    }
    consumer.close().await // commits what was read and leaves the group
}
