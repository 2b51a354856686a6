//! RabbitMQ itself: its management API (typed), reached through a host's transport.

pub mod api;
