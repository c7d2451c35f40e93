//! `kup rehearse`'s pure parts that belong to the CLI: the simulated copy of the clusters
//! (written in the simulator's world format) and the Gantt chart. The timeline itself is
//! laid out by `kup_engine::timeline`, beside the executor whose scheduling it models; the
//! command is in `commands/rehearse.rs`.

pub mod gantt;
pub mod world;
