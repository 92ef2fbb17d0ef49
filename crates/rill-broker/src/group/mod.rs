//! Consumer groups: one actor per group driving a `rill_group::Group` state machine, and the
//! durable store of committed offsets.

mod coordinator;
mod offsets;

pub(crate) use coordinator::Coordinator;
pub(crate) use offsets::Committed;
