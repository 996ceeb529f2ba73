pub mod handler;
mod request;
