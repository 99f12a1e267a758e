//! Create a topic, produce ten records and read them back.

use ferry_client::{Client, Consumer, Producer, ProducerRecord, SeekTo};

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    client.ensure_topic("greetings", 3).await?; // creates it unless it exists

    // Sends are queued at once and batched; each resolves to its offset.
    let producer = Producer::new(&client, "greetings").await?;
    let sends: Vec<_> = (0..10)
        .map(|i| producer.send(ProducerRecord::new(format!("hello {i}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        let sent = sent?;
        println!("sent to {}@{:?}", sent.partition, sent.offset);
    }

    let mut consumer = Consumer::new(&client, "greetings").await?;
    consumer.assign_all(SeekTo::Earliest).await?;
    for record in consumer.poll().await? {
        // long polling: waits for records, at most `max_wait_ms`
        println!("{}@{} {:?}", record.partition, record.offset, record.value);
    }
    Ok(())
}
