pub mod handler;
mod submit;
mod success;
