#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| checkout_fuzz::internal_signature(data));
