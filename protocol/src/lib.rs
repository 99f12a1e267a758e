//! Ferry's wire protocol, with no I/O: the record batch format shared by the
//! client, the broker and the storage engine ([`batch`]), variable-length
//! integers ([`varint`]), read isolation ([`isolation`]), frames ([`frame`]), the API table ([`api`]), the
//! message bodies ([`messages`]), the generated schema ([`schema`]), error
//! codes ([`error`]) and a `tokio_util` codec over frames ([`codec`]).
//!
//! The format of every byte is written down in `PROTOCOL.md` next to this crate.

pub mod api;
pub mod batch;
pub mod codec;
pub mod error;
pub mod frame;
pub mod fsync;
pub mod isolation;
pub mod messages;
pub mod schema;
pub mod scram;
pub mod varint;

/// The TCP port a broker listens on, and clients connect to, when an
/// address names none.
pub const DEFAULT_PORT: u16 = 7171;

pub use api::{Api, ApiKey, Request};
pub use error::{ErrorCode, ProtocolError};
