//! `kup rehearse`'s pure parts: the simulated copy of the clusters, the predicted
//! timeline, and its Gantt chart. The command itself is in `commands/rehearse.rs`.

pub mod gantt;
pub mod timeline;
pub mod world;
