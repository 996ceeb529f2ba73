mod account;
pub mod forms;
mod guard;
pub mod handler;
mod key_form;
mod submit;
mod success;
mod webhook_secret;
