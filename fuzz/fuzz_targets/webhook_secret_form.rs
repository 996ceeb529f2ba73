#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| checkout_fuzz::webhook_secret_form(data));
