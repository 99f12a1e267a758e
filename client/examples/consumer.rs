//! Read every partition of a topic from the beginning, then keep waiting
//! for new records (long polling). Stop with Ctrl-C.
//!
//! ```sh
//! cargo run -p ferry-client --example consumer
//! ```

use ferry_client::{Client, Consumer, SeekTo};

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let client = Client::connect(&addr).await?;
    let mut consumer = Consumer::new(&client, "greetings").await?;
    consumer.assign_all(SeekTo::Earliest).await?;
    loop {
        for record in consumer.poll().await? {
            let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
            println!(
                "partition {} offset {}: {value}",
                record.partition, record.offset
            );
        }
    }
}
