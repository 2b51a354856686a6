//! warren turns a handful of servers with RabbitMQ installed into the cluster described
//! by one `inventory.toml`: render, plan, apply, verify. See README.md for the map.

pub mod cli;
pub mod commands;
pub mod inventory;
pub mod lab;
pub mod render;
