//! The agent: the scan loop, its worker threads, connectivity and shutdown.

pub mod health;
