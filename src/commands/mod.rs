//! One module per command; each returns an exit code or a [`Failure`].

pub mod apply;
pub mod check;
pub mod drift;
pub mod fmt;
pub mod generate;
pub mod graph;
pub mod plan;
pub mod rehearse;
pub mod show;
pub mod sim;
pub mod state;
pub mod validate;
