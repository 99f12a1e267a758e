//! Ctrl-C and SIGTERM while consuming: the consumer stops taking records,
//! a group member commits and leaves, a queue consumer settles what it
//! printed, and ferryctl exits 130 (the shell's code for an interrupted
//! command) without an error message.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The two signals, listened for from creation on: one that arrives while
/// the consumer is busy writing is kept until `recv` is next awaited.
pub struct Interrupt {
    signals: Option<(Signal, Signal)>,
}

impl Interrupt {
    /// Starts listening. Without handlers (which tokio cannot fail to set
    /// up in practice) the default action, exiting, stays in force.
    pub fn listen() -> Interrupt {
        let signals = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        };
        Interrupt { signals }
    }

    /// Resolves at the first SIGINT or SIGTERM since `listen`.
    pub async fn recv(&mut self) {
        match &mut self.signals {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}
