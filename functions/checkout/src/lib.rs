mod complete;
pub mod handler;
mod page;
