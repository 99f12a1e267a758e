//! Produce a few keyed records and print where they landed.
//!
//! ```sh
//! ferry-broker &                                  # listens on 127.0.0.1:7171
//! cargo run -p ferry-client --example producer
//! ```

use ferry_client::{Client, Producer, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    match client.create_topic("greetings", 3).await {
        Ok(()) => println!("created topic greetings"),
        Err(e) if e.code() == Some(ferry_protocol::ErrorCode::TopicAlreadyExists) => {}
        Err(e) => return Err(e),
    }
    let producer = Producer::new(&client, "greetings").await?;
    // Queue every send first so they share batches, then await the acks.
    let sends: Vec<_> = ["ada", "grace", "linus", "barbara"]
        .iter()
        .map(|name| {
            producer.send(ProducerRecord::new(format!("hello, {name}")).with_key(name.to_string()))
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        let meta = sent?;
        println!(
            "stored in partition {} at offset {:?}",
            meta.partition, meta.offset
        );
    }
    Ok(())
}
