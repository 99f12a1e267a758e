//! Connect with a reconnect deadline and watch the connection state.

use std::time::Duration;

use ferry_client::{Client, ClientOptions, ReconnectPolicy};

#[tokio::main]
async fn main() -> Result<(), ferry_client::ClientError> {
    let addr = std::env::var("FERRY_BROKER").unwrap_or_else(|_| "127.0.0.1:7171".into());
    let options = ClientOptions {
        reconnect: ReconnectPolicy {
            deadline: Some(Duration::from_secs(60)), // give up after 60 s away
            ..ReconnectPolicy::default()
        },
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&addr, options).await?;
    let mut states = client.connection_state();
    println!("now {:?}", *states.borrow_and_update());
    Ok(())
}
