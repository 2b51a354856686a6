//! warren turns a handful of servers with RabbitMQ installed into the cluster described
//! by one `inventory.toml`: render, plan, apply, verify. See README.md for the map.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod doctor;
pub mod drill;
pub mod facts;
pub mod interrupt;
pub mod inventory;
pub mod lab;
pub mod lock;
pub mod plan;
pub mod platform;
#[cfg(test)]
pub mod pscheck;
pub mod rabbitmq;
pub mod render;
pub mod runlog;
pub mod transport;
pub mod ui;
pub mod util;
pub mod verify;
pub mod versions;
