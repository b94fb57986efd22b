#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pacsbox_fuzz::deid(data));
