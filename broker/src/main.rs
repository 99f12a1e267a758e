//! `ferry-broker`: parse configuration, set up logging, run the server.

use ferry_broker::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() {
    let config = match Config::load() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("ferry-broker: {message}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init(),
        LogFormat::Human => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry-broker: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(ferry_broker::run(config)) {
        tracing::error!("{message}");
        eprintln!("ferry-broker: {message}");
        std::process::exit(1);
    }
}
