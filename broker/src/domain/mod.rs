//! The broker's typed vocabulary: validated names and the enums requests
//! choose between. `cmd/` builds these from wire messages (validation
//! happens once, in their constructors); `topics`, `groups` and `queues`
//! take and return only these, never wire types.

pub mod choices;
pub mod names;

pub use choices::{parse_isolation, Isolation, OffsetReset, OffsetSpec, StartFrom};
pub use names::{GroupName, Name, QueueName, TopicName, NAME_MAX_BYTES};
