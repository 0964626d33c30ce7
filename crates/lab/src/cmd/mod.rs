//! One file per `weft lab` subcommand.

pub mod agent;
pub mod demo;
pub mod down;
pub mod exec;
pub mod ls;
pub mod rm;
pub mod run;
pub mod up;
