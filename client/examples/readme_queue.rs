//! Take three messages from the queue "replies" and acknowledge each.

use ferry_client::{Client, QueueConfig, QueueConsumer};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    client.ensure_topic("greetings", 3).await?;
    client
        .ensure_queue("greetings", "replies", &QueueConfig::default())
        .await?;
    let mut jobs = QueueConsumer::subscribe(&client, "greetings", "replies", 10).await?;
    for _ in 0..3 {
        let Some(delivery) = jobs.next().await else {
            break;
        };
        let delivery = delivery?;
        println!("working on {:?}", delivery.value);
        delivery.ack().await?; // resolves once the ack is durable
    }
    Ok(())
}
