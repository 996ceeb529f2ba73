mod account;
pub mod forms;
mod guard;
pub mod handler;
mod submit;
mod success;
mod webhook_secret;
