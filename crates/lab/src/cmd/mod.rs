//! One file per `weft lab` subcommand.

pub mod agent;
pub mod bench;
pub mod bench_datapaths;
pub mod bench_docker;
pub mod demo;
pub mod docker;
pub mod down;
pub mod etcd;
pub mod exec;
pub mod ls;
pub mod rm;
pub mod run;
pub mod up;
