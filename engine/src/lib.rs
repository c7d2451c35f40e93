//! kup's engine: configuration, model, policy, planner, plans, executor, state and journal.
//! It depends on no cloud SDK; providers implement [`provider::Provider`].

pub mod config;
pub mod model;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod preflight;
pub mod provider;
pub mod redact;
pub mod removed_apis;
pub mod schedule;
pub mod support;
pub mod version;

pub use version::{Minor, Version};
pub mod events;
pub mod executor;
pub mod fsutil;
pub mod journal;
pub mod kube;
pub mod maintenance;
pub mod schemas;
pub mod state;
pub mod timeline;
